/* store_memory.c: the in-process backend (tests, ephemeral deployments).
 *
 * Same semantics as the SQLite backend, nothing survives the process. One
 * mutex guards everything: the commit thread writes, the loop thread reads.
 *
 * Layout: a chained hash map (app, channel) -> channel; a channel keeps its
 * live rows (message heads) sorted by seq in rows[head..len), so count
 * retention (which drops the oldest) just advances `head`, and the array is
 * compacted only once head reaches half the capacity (amortised O(1) per
 * row). Each row is one allocation holding msg_id and the INSERT's blob; a
 * version replaces the head blob with its own allocation (hdata) and appends
 * the event to the row's vers[] (sorted by vseq, since a version must be
 * newer than the head). An annotation is an event of vers[] too, of kind
 * SW_EVENTS_ANNOTATIONS; it replaces the head only when its record brings
 * one (its summary changed).
 *
 * vv[] is the channel's index of every version, (vseq, seq) sorted by vseq.
 * It gives the same uniqueness rules as SQLite's versions primary key and
 * unique messages_vseq index, and history by vseq: a head's vseq is either
 * its seq (never updated: those rows are already in vseq order in rows[]) or
 * the vseq of its newest version (an entry of vv[]), so a by_vseq query
 * merges those two sorted streams. kv is one array sorted by (ns, key), the
 * expiring values one sorted by id. */
#include "store/backend.h"
#include "store/cloud_memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_ver {
  int64_t vseq, ts;
  int kind; /* SW_EVENTS_VERSIONS or SW_EVENTS_ANNOTATIONS */
  uint8_t *blob; /* own allocation, NULL if blob_len is 0 */
  size_t blob_len;
} mem_ver_t;

typedef struct mem_row {
  int64_t seq, vseq, ts, expires_at;
  const char *msg_id;  /* points into data, or NULL */
  const uint8_t *blob; /* the head: points into data or hdata, or NULL */
  size_t blob_len;
  void *data;  /* the one allocation of this row (msg_id, the INSERT's blob) */
  void *hdata; /* the head blob once a version replaced it, else NULL */
  mem_ver_t *vers; /* version events, ascending vseq */
  size_t nvers, vcap;
} mem_row_t;

/* An entry of a channel's version index. */
typedef struct mem_vref {
  int64_t vseq, seq;
} mem_vref_t;

typedef struct mem_chan {
  struct mem_chan *next; /* hash chain */
  uint64_t hash;
  const char *app, *channel; /* point into key[] */
  int64_t last_seq;
  mem_row_t *rows;
  size_t head, len, cap; /* live rows: rows[head..len) */
  mem_vref_t *vv;        /* every version of the channel, ascending vseq */
  size_t nvv, vvcap;
  char key[]; /* "app\0channel\0" */
} mem_chan_t;

/* One entry per record of the batch being written, to roll it back. */
typedef struct mem_undo {
  mem_chan_t *ch;
  int64_t seq;
  int64_t old_last;
  bool version;     /* a VERSION, APPEND or ANNOTATION: an event was added at vers_at */
  bool head_kept;   /* an ANNOTATION that left the head as it was */
  size_t vers_at;
  /* VERSION: the head it replaced. */
  int64_t old_vseq;
  const uint8_t *old_blob;
  size_t old_blob_len;
  void *old_hdata;
} mem_undo_t;

typedef struct mem_kv {
  const char *ns, *key, *value; /* one allocation, owned via ns */
} mem_kv_t;

/* An expiring value; id and value share one allocation, owned via id. */
typedef struct mem_exp {
  const char *id, *value;
  int64_t expires;
  size_t size;
} mem_exp_t;

typedef struct mem_backend {
  sw_backend_t base;
  mem_cloud_t *cloud; /* Assistant Cloud rows (cloud_memory.c, its own mutex) */
  uv_mutex_t mu;
  mem_chan_t **buckets;
  size_t nbuckets, nchans;
  mem_kv_t *kv;
  size_t nkv, kvcap;
  mem_exp_t *exp; /* sorted by id */
  size_t nexp, expcap, exp_bytes;
  mem_undo_t *undo; /* commit thread scratch, reused across batches */
  size_t undo_cap;
  sw_store_fold_fn fold;
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

/* Frees what a row owns (not the slot). */
static void row_free(mem_row_t *r) {
  for (size_t i = 0; i < r->nvers; i++) free(r->vers[i].blob);
  free(r->vers);
  free(r->hdata);
  free(r->data);
}

static void chan_free(mem_chan_t *c) {
  for (size_t i = c->head; i < c->len; i++) row_free(&c->rows[i]);
  free(c->rows);
  free(c->vv);
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

/* The live row with seq, or NULL. The pointer is valid until the next
 * insertion or deletion in the channel. */
static mem_row_t *chan_row(const mem_chan_t *c, int64_t seq) {
  size_t at = chan_bound(c, seq, false);
  return at < c->len && c->rows[at].seq == seq ? &c->rows[at] : NULL;
}

/* First index of vv whose vseq is > vseq (strict) or >= vseq. */
static size_t vv_bound(const mem_chan_t *c, int64_t vseq, bool strict) {
  size_t lo = 0, hi = c->nvv;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strict ? c->vv[mid].vseq <= vseq : c->vv[mid].vseq < vseq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

static bool vv_has(const mem_chan_t *c, int64_t vseq) {
  size_t at = vv_bound(c, vseq, false);
  return at < c->nvv && c->vv[at].vseq == vseq;
}

/* True when vseq is the vseq of a live head (SQLite: messages_vseq). */
static bool head_vseq_taken(const mem_chan_t *c, int64_t vseq) {
  const mem_row_t *r = chan_row(c, vseq); /* a head never updated has vseq == seq */
  if (r && r->vseq == vseq) return true;
  size_t at = vv_bound(c, vseq, false);
  if (at < c->nvv && c->vv[at].vseq == vseq) {
    r = chan_row(c, c->vv[at].seq);
    return r && r->vseq == vseq;
  }
  return false;
}

/* Drops the vv entries whose message is gone (after rows with versions were
 * deleted). */
static void vv_filter(mem_chan_t *c) {
  size_t w = 0;
  for (size_t k = 0; k < c->nvv; k++)
    if (chan_row(c, c->vv[k].seq)) c->vv[w++] = c->vv[k];
  c->nvv = w;
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
  bool had_versions = c->rows[at].nvers > 0;
  row_free(&c->rows[at]);
  memmove(c->rows + at, c->rows + at + 1, (c->len - at - 1) * sizeof *c->rows);
  c->len--;
  if (had_versions) vv_filter(c);
}

static size_t chan_drop_upto(mem_chan_t *c, int64_t seq) {
  size_t n = 0;
  bool had_versions = false;
  while (c->head < c->len && c->rows[c->head].seq <= seq) {
    had_versions |= c->rows[c->head].nvers > 0;
    row_free(&c->rows[c->head++]);
    n++;
  }
  if (c->head == c->len) c->head = c->len = 0;
  if (had_versions) vv_filter(c);
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
  *row = (mem_row_t){.seq = r->seq, .vseq = r->seq, .ts = r->timestamp,
                     .expires_at = r->expires_at, .blob_len = r->blob_len, .data = d};
  if (il) row->msg_id = memcpy(d, r->msg_id, il);
  if (r->blob_len) row->blob = memcpy(d + il, r->blob, r->blob_len);
  return 0;
}

/* malloc'd copy of len bytes (NULL with *out == NULL when len is 0). */
static int dup_bytes(const uint8_t *p, size_t len, uint8_t **out) {
  *out = NULL;
  if (!len) return 0;
  if (!(*out = malloc(len))) return -ENOMEM;
  memcpy(*out, p, len);
  return 0;
}

static int insert_message(mem_chan_t *c, const sw_store_rec_t *r, mem_undo_t *u) {
  /* seq must not be another head's vseq (SQLite: UNIQUE messages_vseq). */
  if (c->nvv && head_vseq_taken(c, r->seq)) return -EEXIST;
  mem_row_t row;
  int rc = make_row(r, &row);
  if (rc) return rc;
  if ((rc = chan_insert(c, &row)) != 0) {
    free(row.data);
    return rc;
  }
  *u = (mem_undo_t){.ch = c, .seq = r->seq, .old_last = c->last_seq};
  return 0;
}

/* Replaces the head of message r->seq and records the version event, with
 * the rules of the SQLite backend's apply_version. */
static int apply_version(mem_chan_t *c, const sw_store_rec_t *r, mem_undo_t *u) {
  mem_row_t *row = chan_row(c, r->seq);
  if (!row) return -ENOENT;
  if (r->vseq <= row->vseq || head_vseq_taken(c, r->vseq) || vv_has(c, r->vseq)) return -EEXIST;
  /* Everything that can fail first, then mutate. */
  if (row->nvers == row->vcap) {
    size_t cap = row->vcap ? row->vcap * 2 : 2;
    mem_ver_t *p = realloc(row->vers, cap * sizeof *p);
    if (!p) return -ENOMEM;
    row->vers = p;
    row->vcap = cap;
  }
  if (c->nvv == c->vvcap) {
    size_t cap = c->vvcap ? c->vvcap * 2 : 8;
    mem_vref_t *p = realloc(c->vv, cap * sizeof *p);
    if (!p) return -ENOMEM;
    c->vv = p;
    c->vvcap = cap;
  }
  bool keep = r->op == SW_STORE_ANNOTATION && r->blob_len == 0;
  uint8_t *head = NULL, *ev = NULL;
  if ((!keep && dup_bytes(r->blob, r->blob_len, &head)) ||
      dup_bytes(r->version_blob, r->version_blob_len, &ev)) {
    free(head);
    return -ENOMEM;
  }
  /* Sorted by vseq: an annotation that kept the head may be followed by a
   * lower serial (its head's vseq did not move). */
  size_t vat = row->nvers;
  while (vat > 0 && row->vers[vat - 1].vseq > r->vseq) vat--;
  *u = (mem_undo_t){.ch = c, .seq = r->seq, .old_last = c->last_seq, .version = true, .head_kept = keep,
                    .vers_at = vat, .old_vseq = row->vseq, .old_blob = row->blob,
                    .old_blob_len = row->blob_len, .old_hdata = row->hdata};
  if (!keep) {
    row->hdata = head;
    row->blob = head;
    row->blob_len = r->blob_len;
    row->vseq = r->vseq;
  }
  memmove(row->vers + vat + 1, row->vers + vat, (row->nvers - vat) * sizeof *row->vers);
  row->nvers++;
  row->vers[vat] = (mem_ver_t){.vseq = r->vseq, .ts = r->timestamp, .blob = ev, .blob_len = r->version_blob_len,
                               .kind = r->op == SW_STORE_ANNOTATION ? SW_EVENTS_ANNOTATIONS : SW_EVENTS_VERSIONS};
  size_t at = vv_bound(c, r->vseq, false); /* the end, when serials increase */
  memmove(c->vv + at + 1, c->vv + at, (c->nvv - at) * sizeof *c->vv);
  c->vv[at] = (mem_vref_t){.vseq = r->vseq, .seq = r->seq};
  c->nvv++;
  return 0;
}

/* An append: the head with the event folded in replaces the head, as a
 * VERSION would (memory has no log to defer the fold to). */
static int apply_append(mem_backend_t *b, mem_chan_t *c, const sw_store_rec_t *r, mem_undo_t *u) {
  mem_row_t *row = chan_row(c, r->seq);
  if (!row) return -ENOENT;
  sw_store_event_t ev = {.blob = r->version_blob ? r->version_blob : (const uint8_t *)"",
                         .len = r->version_blob_len,
                         .hint = r->fold_hint};
  sw_buf_t head = {0};
  int rc = b->fold(row->blob, row->blob_len, &ev, 1, &head);
  if (rc == 0) {
    sw_store_rec_t v = *r;
    v.op = SW_STORE_VERSION;
    v.blob = head.data;
    v.blob_len = head.len;
    rc = apply_version(c, &v, u);
  }
  buf_free(&head);
  return rc;
}

/* Undoes one record of a failed batch (called in reverse order). */
static void undo_one(const mem_undo_t *u) {
  mem_chan_t *c = u->ch;
  c->last_seq = u->old_last;
  if (!u->version) {
    chan_remove(c, u->seq);
    return;
  }
  mem_row_t *row = chan_row(c, u->seq); /* later records were undone already */
  mem_ver_t v = row->vers[u->vers_at];
  memmove(row->vers + u->vers_at, row->vers + u->vers_at + 1, (row->nvers - u->vers_at - 1) * sizeof *row->vers);
  row->nvers--;
  size_t at = vv_bound(c, v.vseq, false);
  memmove(c->vv + at, c->vv + at + 1, (c->nvv - at - 1) * sizeof *c->vv);
  c->nvv--;
  free(v.blob);
  if (u->head_kept) return;
  free(row->hdata);
  row->hdata = u->old_hdata;
  row->blob = u->old_blob;
  row->blob_len = u->old_blob_len;
  row->vseq = u->old_vseq;
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
  /* Pass 1: the records in order, each one logged so a failure can roll the
   * batch back (the batch is atomic, like the SQLite transaction). */
  for (; done < n; done++) {
    const sw_store_rec_t *r = &recs[done];
    mem_chan_t *c = chan_get(b, r->app_id, r->channel);
    if (!c) {
      rc = -ENOMEM;
      break;
    }
    rc = r->op == SW_STORE_VERSION || r->op == SW_STORE_ANNOTATION ? apply_version(c, r, &b->undo[done])
         : r->op == SW_STORE_APPEND                                ? apply_append(b, c, r, &b->undo[done])
                                                                   : insert_message(c, r, &b->undo[done]);
    if (rc) break;
    if (r->vseq > c->last_seq) c->last_seq = r->vseq; /* vseq == seq for an INSERT */
  }
  if (rc) {
    while (done-- > 0) undo_one(&b->undo[done]);
    uv_mutex_unlock(&b->mu);
    return rc;
  }
  /* The heads replaced by versions are garbage now. */
  for (size_t i = 0; i < n; i++)
    if (b->undo[i].version && !b->undo[i].head_kept) free(b->undo[i].old_hdata);
  /* Pass 2: count retention at each run end, against the highest message
   * seq (the same rule as the SQLite backend). Cannot fail. */
  for (size_t i = 0; i < n; i++) {
    const sw_store_rec_t *r = &recs[i];
    if (r->keep_count <= 0 || (i + 1 < n && same_channel(r, &recs[i + 1]))) continue;
    mem_chan_t *c = b->undo[i].ch;
    if (c->len == c->head) continue;
    int64_t top = c->rows[c->len - 1].seq;
    if (top >= INT64_MIN + r->keep_count) chan_drop_upto(c, top - r->keep_count);
  }
  uv_mutex_unlock(&b->mu);
  return 0;
}

static void exp_prune_locked(mem_backend_t *b, int64_t now);

static int mem_prune(sw_backend_t *be, int64_t now, size_t limit, size_t *deleted, bool *more) {
  mem_backend_t *b = (mem_backend_t *)be;
  size_t n = 0;
  (void)limit; /* one sweep regardless: it is all in memory anyway */
  uv_mutex_lock(&b->mu);
  for (size_t i = 0; i < b->nbuckets; i++) {
    for (mem_chan_t *c = b->buckets[i]; c; c = c->next) {
      size_t w = c->head;
      bool had_versions = false;
      for (size_t k = c->head; k < c->len; k++) {
        if (row_visible(&c->rows[k], now)) {
          c->rows[w++] = c->rows[k];
        } else {
          had_versions |= c->rows[k].nvers > 0;
          row_free(&c->rows[k]);
          n++;
        }
      }
      c->len = w;
      if (c->head == c->len) c->head = c->len = 0;
      if (had_versions) vv_filter(c);
    }
  }
  exp_prune_locked(b, now);
  uv_mutex_unlock(&b->mu);
  *deleted = n;
  *more = false;
  return 0;
}

/* Under mu: drops the expiring values with expires <= now. */
static void exp_prune_locked(mem_backend_t *b, int64_t now) {
  size_t w = 0;
  for (size_t i = 0; i < b->nexp; i++) {
    if (b->exp[i].expires <= now) {
      b->exp_bytes -= b->exp[i].size;
      free((void *)b->exp[i].id);
    } else {
      b->exp[w++] = b->exp[i];
    }
  }
  b->nexp = w;
}

/* Under mu: the index of the first entry with id >= the given one. */
static size_t exp_bound(const mem_backend_t *b, const char *id) {
  size_t lo = 0, hi = b->nexp;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (strcmp(b->exp[mid].id, id) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

static int mem_exp_put(sw_backend_t *be, const char *id, const char *value, int64_t expires, int64_t now,
                       size_t max_count, size_t max_bytes) {
  mem_backend_t *b = (mem_backend_t *)be;
  size_t il = strlen(id) + 1, vl = strlen(value);
  int rc = 0;
  uv_mutex_lock(&b->mu);
  exp_prune_locked(b, now);
  size_t at = exp_bound(b, id);
  if (b->nexp >= max_count || vl > max_bytes || b->exp_bytes > max_bytes - vl) {
    rc = -EDQUOT;
  } else if (at < b->nexp && strcmp(b->exp[at].id, id) == 0) {
    rc = -EEXIST;
  } else if (b->nexp == b->expcap) {
    size_t cap = b->expcap ? b->expcap * 2 : 16;
    mem_exp_t *p = realloc(b->exp, cap * sizeof *p);
    if (!p) rc = -ENOMEM;
    else b->exp = p, b->expcap = cap;
  }
  char *mem = rc ? NULL : malloc(il + vl + 1);
  if (!rc && !mem) rc = -ENOMEM;
  if (!rc) {
    memcpy(mem, id, il);
    memcpy(mem + il, value, vl + 1);
    memmove(b->exp + at + 1, b->exp + at, (b->nexp - at) * sizeof *b->exp);
    b->exp[at] = (mem_exp_t){.id = mem, .value = mem + il, .expires = expires, .size = vl};
    b->nexp++;
    b->exp_bytes += vl;
  }
  uv_mutex_unlock(&b->mu);
  return rc;
}

static int mem_exp_get(sw_backend_t *be, const char *id, char **value, int64_t *expires) {
  mem_backend_t *b = (mem_backend_t *)be;
  int rc = 0;
  uv_mutex_lock(&b->mu);
  size_t at = exp_bound(b, id);
  if (at < b->nexp && strcmp(b->exp[at].id, id) == 0) {
    *expires = b->exp[at].expires;
    rc = (*value = strdup(b->exp[at].value)) ? 1 : -ENOMEM;
  }
  uv_mutex_unlock(&b->mu);
  return rc;
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
  mem_cloud_delete_app(b->cloud, app_id);
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

static bool row_matches(const mem_row_t *r, const sw_history_q_t *q) {
  return r->ts >= q->start && r->ts <= q->end && row_visible(r, q->now);
}

/* History by vseq: merges the heads never updated (rows[] in seq order,
 * vseq == seq) with the updated ones (vv entries that are their message's
 * newest version), both bounded by after_seq < vseq < before_seq. */
static int history_by_vseq(const mem_chan_t *c, const sw_history_q_t *q, sw_rows_builder_t *rb) {
  bool fwd = q->forwards;
  size_t lo = chan_bound(c, q->after_seq, true), hi = chan_bound(c, q->before_seq, false);
  size_t ulo = vv_bound(c, q->after_seq, true), uhi = vv_bound(c, q->before_seq, false);
  if (lo > hi) hi = lo;    /* empty range when after_seq >= before_seq */
  if (ulo > uhi) uhi = ulo;
  size_t i = fwd ? lo : hi, j = fwd ? ulo : uhi; /* backwards: next is i - 1, j - 1 */
  int rc = 0;
  while (rb->n < q->limit && rc == 0) {
    const mem_row_t *sr = NULL, *ur = NULL;
    while (fwd ? i < hi : i > lo) {
      const mem_row_t *r = &c->rows[fwd ? i : i - 1];
      if (r->vseq == r->seq) {
        sr = r;
        break;
      }
      fwd ? i++ : i--; /* updated: comes through vv */
    }
    while (fwd ? j < uhi : j > ulo) {
      const mem_vref_t *e = &c->vv[fwd ? j : j - 1];
      const mem_row_t *r = chan_row(c, e->seq);
      if (r && r->vseq == e->vseq) {
        ur = r;
        break;
      }
      fwd ? j++ : j--; /* superseded by a newer version */
    }
    const mem_row_t *r;
    if (sr && (!ur || (fwd ? sr->vseq < ur->vseq : sr->vseq > ur->vseq))) {
      r = sr;
      fwd ? i++ : i--;
    } else if (ur) {
      r = ur;
      fwd ? j++ : j--;
    } else {
      break;
    }
    if (row_matches(r, q)) rc = rows_builder_add(rb, r->seq, r->vseq, r->ts, r->blob, r->blob_len);
  }
  return rc;
}

static int mem_history(sw_backend_t *be, const sw_history_q_t *q, sw_store_rows_t *out) {
  mem_backend_t *b = (mem_backend_t *)be;
  sw_rows_builder_t rb = {0};
  int rc = 0;
  uv_mutex_lock(&b->mu);
  mem_chan_t *c = chan_find(b, q->app_id, q->channel);
  if (c && q->after_seq < q->before_seq) {
    if (q->by_vseq) {
      rc = history_by_vseq(c, q, &rb);
    } else {
      size_t lo = chan_bound(c, q->after_seq, true);   /* seq > after_seq */
      size_t hi = chan_bound(c, q->before_seq, false); /* seq < before_seq */
      for (size_t k = 0; k < hi - lo && rb.n < q->limit && rc == 0; k++) {
        const mem_row_t *r = &c->rows[q->forwards ? lo + k : hi - 1 - k];
        if (!row_matches(r, q)) continue;
        rc = rows_builder_add(&rb, r->seq, r->vseq, r->ts, r->blob, r->blob_len);
      }
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

/* Copies a head into *row: 1, or -ENOMEM. */
static int copy_head(const mem_row_t *r, sw_store_row_t *row) {
  uint8_t *copy;
  if (dup_bytes(r->blob, r->blob_len, &copy)) return -ENOMEM;
  *row = (sw_store_row_t){.seq = r->seq, .vseq = r->vseq, .timestamp = r->ts, .blob = copy,
                          .blob_len = r->blob_len};
  return 1;
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
    ret = copy_head(r, row);
    break;
  }
  uv_mutex_unlock(&b->mu);
  return ret;
}

static int mem_get(sw_backend_t *be, const char *app_id, const char *channel, int64_t seq,
                   sw_store_row_t *row) {
  mem_backend_t *b = (mem_backend_t *)be;
  int ret = 0;
  uv_mutex_lock(&b->mu);
  mem_chan_t *c = chan_find(b, app_id, channel);
  const mem_row_t *r = c ? chan_row(c, seq) : NULL;
  if (r) ret = copy_head(r, row);
  uv_mutex_unlock(&b->mu);
  return ret;
}

static int mem_versions(sw_backend_t *be, const char *app_id, const char *channel, int64_t seq,
                        bool forwards, size_t limit, int64_t lo, int64_t hi, int kind,
                        sw_store_rows_t *out) {
  mem_backend_t *b = (mem_backend_t *)be;
  sw_rows_builder_t rb = {0};
  int rc = 0;
  uv_mutex_lock(&b->mu);
  mem_chan_t *c = chan_find(b, app_id, channel);
  const mem_row_t *r = c ? chan_row(c, seq) : NULL;
  if (r && lo < hi) {
    /* vers[] ascending: [a, z) is lo < vseq < hi. */
    size_t a = 0, z = r->nvers;
    while (a < z && r->vers[a].vseq <= lo) a++;
    while (z > a && r->vers[z - 1].vseq >= hi) z--;
    for (size_t k = 0; k < z - a && rb.n < limit && rc == 0; k++) {
      const mem_ver_t *v = &r->vers[forwards ? a + k : z - 1 - k];
      if (v->kind != kind) continue;
      rc = rows_builder_add(&rb, r->seq, v->vseq, v->ts, v->blob, v->blob_len);
    }
  }
  uv_mutex_unlock(&b->mu);
  if (rc) {
    rows_builder_free(&rb);
    return rc;
  }
  return rows_builder_finish(&rb, out);
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
  for (size_t i = 0; i < b->nexp; i++) free((void *)b->exp[i].id);
  free(b->exp);
  free(b->undo);
  mem_cloud_close(b->cloud);
  uv_mutex_destroy(&b->mu);
  free(b);
}

static int mem_cloud_write_op(sw_backend_t *be, const sw_cloud_op_t *op, sw_cloud_result_t *res) {
  return mem_cloud_write(((mem_backend_t *)be)->cloud, op, res);
}

static int mem_cloud_threads_op(sw_backend_t *be, const sw_cloud_thread_q_t *q, sw_cloud_threads_t *out) {
  return mem_cloud_threads(((mem_backend_t *)be)->cloud, q, out);
}

static int mem_cloud_messages_op(sw_backend_t *be, const sw_cloud_msg_q_t *q, sw_cloud_msgs_t *out) {
  return mem_cloud_messages(((mem_backend_t *)be)->cloud, q, out);
}

static const sw_backend_ops_t MEM_OPS = {
    .write_batch = mem_write_batch,
    .prune = mem_prune,
    .delete_app = mem_delete_app,
    .kv_put = mem_kv_put,
    .exp_put = mem_exp_put,
    .history = mem_history,
    .last_seq = mem_last_seq,
    .find_by_id = mem_find_by_id,
    .get = mem_get,
    .versions = mem_versions,
    .kv_list = mem_kv_list,
    .exp_get = mem_exp_get,
    .cloud_write = mem_cloud_write_op,
    .cloud_threads = mem_cloud_threads_op,
    .cloud_messages = mem_cloud_messages_op,
    .close = mem_close,
};

int backend_memory_open(const sw_store_opts_t *opts, sw_backend_t **out) {
  mem_backend_t *b = calloc(1, sizeof *b);
  if (!b) return -ENOMEM;
  b->fold = opts->fold;
  if (mem_cloud_open(&b->cloud)) {
    free(b);
    return -ENOMEM;
  }
  if (uv_mutex_init(&b->mu)) {
    mem_cloud_close(b->cloud);
    free(b);
    return -ENOMEM;
  }
  b->base.ops = &MEM_OPS;
  *out = &b->base;
  return 0;
}
