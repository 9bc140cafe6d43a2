/* store_memory.c: the in-process backend (tests, ephemeral deployments).
 *
 * Same semantics as the SQLite backend, nothing survives the process. One
 * mutex guards everything: the commit thread writes, the loop thread reads.
 *
 * Layout: a chained hash map (app, channel) -> channel; a channel keeps its
 * live rows sorted by seq in rows[head..len), so count retention (which drops
 * the oldest) just advances `head`, and the array is compacted only once head
 * reaches half the capacity (amortised O(1) per row). Each row is one
 * allocation holding msg_id and blob. kv is one array sorted by (ns, key). */
#include "store/backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_row {
  int64_t seq, ts, expires_at;
  const char *msg_id; /* points into data, or NULL */
  const uint8_t *blob; /* points into data, or NULL */
  size_t blob_len;
  void *data; /* the one allocation of this row */
} mem_row_t;

typedef struct mem_chan {
  struct mem_chan *next; /* hash chain */
  uint64_t hash;
  const char *app, *channel; /* point into key[] */
  int64_t last_seq;
  mem_row_t *rows;
  size_t head, len, cap; /* live rows: rows[head..len) */
  char key[];            /* "app\0channel\0" */
} mem_chan_t;

/* One entry per record of the batch being written, to roll it back. */
typedef struct mem_undo {
  mem_chan_t *ch;
  int64_t seq;
  int64_t old_last;
} mem_undo_t;

typedef struct mem_kv {
  const char *ns, *key, *value; /* one allocation, owned via ns */
} mem_kv_t;

typedef struct mem_backend {
  sw_backend_t base;
  uv_mutex_t mu;
  mem_chan_t **buckets;
  size_t nbuckets, nchans;
  mem_kv_t *kv;
  size_t nkv, kvcap;
  mem_undo_t *undo; /* commit thread scratch, reused across batches */
  size_t undo_cap;
} mem_backend_t;

/* ------------------------------------------------------------- channels */

static uint64_t chan_hash(const char *app, const char *channel) {
  uint64_t h = 1469598103934665603ULL; /* FNV-1a */
  for (const unsigned char *p = (const unsigned char *)app; *p; p++) h = (h ^ *p) * 1099511628211ULL;
  h = (h ^ 0xff) * 1099511628211ULL; /* separator: ("ab","c") != ("a","bc") */
  for (const unsigned char *p = (const unsigned char *)channel; *p; p++)
    h = (h ^ *p) * 1099511628211ULL;
  return h;
}

static mem_chan_t *chan_find(mem_backend_t *b, const char *app, const char *channel) {
  if (!b->nbuckets) return NULL;
  uint64_t h = chan_hash(app, channel);
  for (mem_chan_t *c = b->buckets[h & (b->nbuckets - 1)]; c; c = c->next)
    if (c->hash == h && strcmp(c->app, app) == 0 && strcmp(c->channel, channel) == 0) return c;
  return NULL;
}

static int grow_buckets(mem_backend_t *b) {
  size_t n = b->nbuckets ? b->nbuckets * 2 : 64;
  mem_chan_t **nb = calloc(n, sizeof *nb);
  if (!nb) return -ENOMEM;
  for (size_t i = 0; i < b->nbuckets; i++) {
    for (mem_chan_t *c = b->buckets[i], *next; c; c = next) {
      next = c->next;
      c->next = nb[c->hash & (n - 1)];
      nb[c->hash & (n - 1)] = c;
    }
  }
  free(b->buckets);
  b->buckets = nb;
  b->nbuckets = n;
  return 0;
}

static mem_chan_t *chan_get(mem_backend_t *b, const char *app, const char *channel) {
  mem_chan_t *c = chan_find(b, app, channel);
  if (c) return c;
  if (b->nchans >= b->nbuckets && grow_buckets(b)) return NULL; /* load factor <= 1 */
  size_t al = strlen(app) + 1, cl = strlen(channel) + 1;
  c = calloc(1, sizeof *c + al + cl);
  if (!c) return NULL;
  memcpy(c->key, app, al);
  memcpy(c->key + al, channel, cl);
  c->app = c->key;
  c->channel = c->key + al;
  c->hash = chan_hash(app, channel);
  c->last_seq = -1;
  c->next = b->buckets[c->hash & (b->nbuckets - 1)];
  b->buckets[c->hash & (b->nbuckets - 1)] = c;
  b->nchans++;
  return c;
}

static void chan_free(mem_chan_t *c) {
  for (size_t i = c->head; i < c->len; i++) free(c->rows[i].data);
  free(c->rows);
  free(c);
}

/* First index in [head, len) whose seq is > seq (strict) or >= seq. */
static size_t chan_bound(const mem_chan_t *c, int64_t seq, bool strict) {
  size_t lo = c->head, hi = c->len;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strict ? c->rows[mid].seq <= seq : c->rows[mid].seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

/* Inserts keeping rows sorted; -EEXIST on a duplicate seq, -ENOMEM. */
static int chan_insert(mem_chan_t *c, const mem_row_t *row) {
  size_t at = c->len;
  if (c->len > c->head && c->rows[c->len - 1].seq >= row->seq) { /* not the usual append */
    at = chan_bound(c, row->seq, false);
    if (at < c->len && c->rows[at].seq == row->seq) return -EEXIST;
  }
  if (c->len == c->cap) {
    if (c->head > 0 && c->head >= c->cap / 2) {
      memmove(c->rows, c->rows + c->head, (c->len - c->head) * sizeof *c->rows);
      at -= c->head;
      c->len -= c->head;
      c->head = 0;
    } else {
      size_t cap = c->cap ? c->cap * 2 : 8;
      mem_row_t *p = realloc(c->rows, cap * sizeof *p);
      if (!p) return -ENOMEM;
      c->rows = p;
      c->cap = cap;
    }
  }
  memmove(c->rows + at + 1, c->rows + at, (c->len - at) * sizeof *c->rows);
  c->rows[at] = *row;
  c->len++;
  return 0;
}

/* Removes (and frees) the row with seq, if present. */
static void chan_remove(mem_chan_t *c, int64_t seq) {
  size_t at = chan_bound(c, seq, false);
  if (at == c->len || c->rows[at].seq != seq) return;
  free(c->rows[at].data);
  memmove(c->rows + at, c->rows + at + 1, (c->len - at - 1) * sizeof *c->rows);
  c->len--;
}

static size_t chan_drop_upto(mem_chan_t *c, int64_t seq) {
  size_t n = 0;
  while (c->head < c->len && c->rows[c->head].seq <= seq) {
    free(c->rows[c->head++].data);
    n++;
  }
  if (c->head == c->len) c->head = c->len = 0;
  return n;
}

static bool row_visible(const mem_row_t *r, int64_t now) {
  return r->expires_at == 0 || r->expires_at > now;
}

/* -------------------------------------------------------------- writes */

static bool same_channel(const sw_store_rec_t *a, const sw_store_rec_t *c) {
  return strcmp(a->app_id, c->app_id) == 0 && strcmp(a->channel, c->channel) == 0;
}

static int make_row(const sw_store_rec_t *r, mem_row_t *row) {
  size_t il = r->msg_id ? strlen(r->msg_id) + 1 : 0;
  if (r->blob_len > SIZE_MAX - il - 1) return -ENOMEM;
  char *d = malloc(il + r->blob_len + 1); /* +1: never malloc(0) */
  if (!d) return -ENOMEM;
  *row = (mem_row_t){.seq = r->seq, .ts = r->timestamp, .expires_at = r->expires_at,
                     .blob_len = r->blob_len, .data = d};
  if (il) row->msg_id = memcpy(d, r->msg_id, il);
  if (r->blob_len) row->blob = memcpy(d + il, r->blob, r->blob_len);
  return 0;
}

static int mem_write_batch(sw_backend_t *be, const sw_store_rec_t *recs, size_t n) {
  mem_backend_t *b = (mem_backend_t *)be;
  if (n > b->undo_cap) {
    mem_undo_t *u = realloc(b->undo, n * sizeof *u);
    if (!u) return -ENOMEM;
    b->undo = u;
    b->undo_cap = n;
  }
  uv_mutex_lock(&b->mu);
  int rc = 0;
  size_t done = 0;
  /* Pass 1: inserts, each one logged so a failure can roll the batch back
   * (the batch is atomic, like the SQLite transaction). */
  for (; done < n; done++) {
    const sw_store_rec_t *r = &recs[done];
    mem_chan_t *c = chan_get(b, r->app_id, r->channel);
    mem_row_t row;
    if (!c || (rc = make_row(r, &row)) != 0) {
      rc = c ? rc : -ENOMEM;
      break;
    }
    if ((rc = chan_insert(c, &row)) != 0) {
      free(row.data);
      break;
    }
    b->undo[done] = (mem_undo_t){.ch = c, .seq = r->seq, .old_last = c->last_seq};
    if (r->seq > c->last_seq) c->last_seq = r->seq;
  }
  if (rc) {
    while (done-- > 0) {
      chan_remove(b->undo[done].ch, b->undo[done].seq);
      b->undo[done].ch->last_seq = b->undo[done].old_last;
    }
    uv_mutex_unlock(&b->mu);
    return rc;
  }
  /* Pass 2: count retention at each run end, against the final serials
   * (the same rule as the SQLite backend). Cannot fail. */
  for (size_t i = 0; i < n; i++) {
    const sw_store_rec_t *r = &recs[i];
    if (r->keep_count <= 0 || (i + 1 < n && same_channel(r, &recs[i + 1]))) continue;
    mem_chan_t *c = b->undo[i].ch;
    if (c->last_seq >= INT64_MIN + r->keep_count) chan_drop_upto(c, c->last_seq - r->keep_count);
  }
  uv_mutex_unlock(&b->mu);
  return 0;
}

static int mem_prune(sw_backend_t *be, int64_t now, size_t limit, size_t *deleted) {
  mem_backend_t *b = (mem_backend_t *)be;
  size_t n = 0;
  (void)limit; /* one sweep regardless: it is all in memory anyway */
  uv_mutex_lock(&b->mu);
  for (size_t i = 0; i < b->nbuckets; i++) {
    for (mem_chan_t *c = b->buckets[i]; c; c = c->next) {
      size_t w = c->head;
      for (size_t k = c->head; k < c->len; k++) {
        if (row_visible(&c->rows[k], now)) {
          c->rows[w++] = c->rows[k];
        } else {
          free(c->rows[k].data);
          n++;
        }
      }
      c->len = w;
      if (c->head == c->len) c->head = c->len = 0;
    }
  }
  uv_mutex_unlock(&b->mu);
  *deleted = n;
  return 0;
}

static int mem_delete_app(sw_backend_t *be, const char *app_id) {
  mem_backend_t *b = (mem_backend_t *)be;
  uv_mutex_lock(&b->mu);
  for (size_t i = 0; i < b->nbuckets; i++) {
    for (mem_chan_t **pc = &b->buckets[i]; *pc;) {
      mem_chan_t *c = *pc;
      if (strcmp(c->app, app_id) == 0) {
        *pc = c->next;
        chan_free(c);
        b->nchans--;
      } else {
        pc = &c->next;
      }
    }
  }
  uv_mutex_unlock(&b->mu);
  return 0;
}

/* ------------------------------------------------------------------ kv */

static int kv_cmp(const mem_kv_t *e, const char *ns, const char *key) {
  int c = strcmp(e->ns, ns);
  return c ? c : strcmp(e->key, key);
}

/* First index whose (ns, key) >= (ns, key); key NULL means the ns start. */
static size_t kv_bound(const mem_backend_t *b, const char *ns, const char *key) {
  size_t lo = 0, hi = b->nkv;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (kv_cmp(&b->kv[mid], ns, key ? key : "") < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static int mem_kv_put(sw_backend_t *be, const char *ns, const char *key, const char *value) {
  mem_backend_t *b = (mem_backend_t *)be;
  mem_kv_t e = {0};
  if (value) {
    size_t nl = strlen(ns) + 1, kl = strlen(key) + 1, vl = strlen(value) + 1;
    char *d = malloc(nl + kl + vl);
    if (!d) return -ENOMEM;
    e.ns = memcpy(d, ns, nl);
    e.key = memcpy(d + nl, key, kl);
    e.value = memcpy(d + nl + kl, value, vl);
  }
  int rc = 0;
  uv_mutex_lock(&b->mu);
  size_t at = kv_bound(b, ns, key);
  bool found = at < b->nkv && kv_cmp(&b->kv[at], ns, key) == 0;
  if (found) {
    free((void *)b->kv[at].ns);
    if (value) {
      b->kv[at] = e;
    } else {
      memmove(b->kv + at, b->kv + at + 1, (b->nkv - at - 1) * sizeof *b->kv);
      b->nkv--;
    }
  } else if (value) {
    if (b->nkv == b->kvcap) {
      size_t cap = b->kvcap ? b->kvcap * 2 : 16;
      mem_kv_t *p = realloc(b->kv, cap * sizeof *p);
      if (!p) {
        free((void *)e.ns);
        rc = -ENOMEM;
        goto out;
      }
      b->kv = p;
      b->kvcap = cap;
    }
    memmove(b->kv + at + 1, b->kv + at, (b->nkv - at) * sizeof *b->kv);
    b->kv[at] = e;
    b->nkv++;
  }
out:
  uv_mutex_unlock(&b->mu);
  return rc;
}

static int mem_kv_list(sw_backend_t *be, const char *ns, sw_buf_t *out, size_t *count) {
  mem_backend_t *b = (mem_backend_t *)be;
  int rc = 0;
  *count = 0;
  uv_mutex_lock(&b->mu);
  for (size_t i = kv_bound(b, ns, NULL); i < b->nkv && strcmp(b->kv[i].ns, ns) == 0; i++) {
    size_t kl = strlen(b->kv[i].key) + 1, vl = strlen(b->kv[i].value) + 1;
    if (buf_reserve(out, kl + vl)) {
      rc = -ENOMEM;
      break;
    }
    buf_append(out, b->kv[i].key, kl);
    buf_append(out, b->kv[i].value, vl);
    (*count)++;
  }
  uv_mutex_unlock(&b->mu);
  return rc;
}

/* --------------------------------------------------------------- reads */

static int mem_history(sw_backend_t *be, const sw_history_q_t *q, sw_store_rows_t *out) {
  mem_backend_t *b = (mem_backend_t *)be;
  sw_rows_builder_t rb = {0};
  int rc = 0;
  uv_mutex_lock(&b->mu);
  mem_chan_t *c = chan_find(b, q->app_id, q->channel);
  if (c && q->after_seq < q->before_seq) {
    size_t lo = chan_bound(c, q->after_seq, true);   /* seq > after_seq */
    size_t hi = chan_bound(c, q->before_seq, false); /* seq < before_seq */
    for (size_t k = 0; k < hi - lo && rb.n < q->limit && rc == 0; k++) {
      const mem_row_t *r = &c->rows[q->forwards ? lo + k : hi - 1 - k];
      if (r->ts < q->start || r->ts > q->end || !row_visible(r, q->now)) continue;
      rc = rows_builder_add(&rb, r->seq, r->ts, r->blob, r->blob_len);
    }
  }
  uv_mutex_unlock(&b->mu);
  if (rc) {
    rows_builder_free(&rb);
    return rc;
  }
  return rows_builder_finish(&rb, out);
}

static int mem_last_seq(sw_backend_t *be, const char *app_id, const char *channel, int64_t *seq) {
  mem_backend_t *b = (mem_backend_t *)be;
  uv_mutex_lock(&b->mu);
  mem_chan_t *c = chan_find(b, app_id, channel);
  *seq = c ? c->last_seq : -1;
  uv_mutex_unlock(&b->mu);
  return 0;
}

/* Linear scan from the newest row: fine for a backend meant for tests. */
static int mem_find_by_id(sw_backend_t *be, const char *app_id, const char *channel,
                          const char *msg_id, sw_store_row_t *row) {
  mem_backend_t *b = (mem_backend_t *)be;
  int ret = 0;
  uv_mutex_lock(&b->mu);
  mem_chan_t *c = chan_find(b, app_id, channel);
  for (size_t k = c ? c->len : 0; c && k > c->head; k--) {
    const mem_row_t *r = &c->rows[k - 1];
    if (!r->msg_id || strcmp(r->msg_id, msg_id) != 0) continue;
    uint8_t *copy = NULL;
    if (r->blob_len && !(copy = malloc(r->blob_len))) {
      ret = -ENOMEM;
      break;
    }
    if (r->blob_len) memcpy(copy, r->blob, r->blob_len);
    *row = (sw_store_row_t){.seq = r->seq, .timestamp = r->ts, .blob = copy,
                            .blob_len = r->blob_len};
    ret = 1;
    break;
  }
  uv_mutex_unlock(&b->mu);
  return ret;
}

/* -------------------------------------------------------------- open/close */

static void mem_close(sw_backend_t *be) {
  mem_backend_t *b = (mem_backend_t *)be;
  for (size_t i = 0; i < b->nbuckets; i++) {
    for (mem_chan_t *c = b->buckets[i], *next; c; c = next) {
      next = c->next;
      chan_free(c);
    }
  }
  free(b->buckets);
  for (size_t i = 0; i < b->nkv; i++) free((void *)b->kv[i].ns);
  free(b->kv);
  free(b->undo);
  uv_mutex_destroy(&b->mu);
  free(b);
}

static const sw_backend_ops_t MEM_OPS = {
    .write_batch = mem_write_batch,
    .prune = mem_prune,
    .delete_app = mem_delete_app,
    .kv_put = mem_kv_put,
    .history = mem_history,
    .last_seq = mem_last_seq,
    .find_by_id = mem_find_by_id,
    .kv_list = mem_kv_list,
    .close = mem_close,
};

int backend_memory_open(const sw_store_opts_t *opts, sw_backend_t **out) {
  (void)opts;
  mem_backend_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  if (uv_mutex_init(&b->mu)) {
    free(b);
    return -ENOMEM;
  }
  b->base.ops = &MEM_OPS;
  *out = &b->base;
  return 0;
}
