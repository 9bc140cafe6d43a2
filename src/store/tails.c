#include "store/tails.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int tails_init(sw_tails_t *t) {
  memset(t, 0, sizeof *t);
  return uv_mutex_init(&t->mu) ? -ENOMEM : 0;
}

static void reap(sw_tails_t *t, sw_tail_t *tail);

static void tail_free(sw_tail_t *tail) {
  for (size_t i = 0; i < tail->n; i++) free(tail->ev[i].blob);
  free(tail->ev);
  free(tail->key);
  free(tail);
}

void tails_free(sw_tails_t *t) {
  sw_tail_t *tail, *tmp;
  HASH_ITER(hh, t->all, tail, tmp) {
    HASH_DEL(t->all, tail);
    tail_free(tail);
  }
  free(t->touched);
  uv_mutex_destroy(&t->mu);
}

void tails_lock(sw_tails_t *t) { uv_mutex_lock(&t->mu); }
void tails_unlock(sw_tails_t *t) { uv_mutex_unlock(&t->mu); }

/* app NUL channel NUL seq: the hash key, in buf (cap bytes) or malloc'd. */
static char *make_key(const char *app, const char *channel, int64_t seq, char *buf, size_t cap, size_t *len) {
  size_t al = strlen(app) + 1, cl = strlen(channel) + 1;
  *len = al + cl + sizeof seq;
  char *k = *len <= cap ? buf : malloc(*len);
  if (!k) return NULL;
  memcpy(k, app, al);
  memcpy(k + al, channel, cl);
  memcpy(k + al + cl, &seq, sizeof seq);
  return k;
}

sw_tail_t *tails_find(sw_tails_t *t, const char *app, const char *channel, int64_t seq) {
  if (!t->all) return NULL;
  char buf[320];
  size_t len;
  char *k = make_key(app, channel, seq, buf, sizeof buf, &len);
  if (!k) return NULL;
  sw_tail_t *tail = NULL;
  HASH_FIND(hh, t->all, k, len, tail);
  if (k != buf) free(k);
  return tail;
}

static int touch(sw_tails_t *t, sw_tail_t *tail) {
  if (tail->touched) return 0;
  if (t->n_touched == t->cap_touched) {
    size_t cap = t->cap_touched ? t->cap_touched * 2 : 64;
    sw_tail_t **p = realloc(t->touched, cap * sizeof *p);
    if (!p) return -ENOMEM;
    t->touched = p;
    t->cap_touched = cap;
  }
  t->touched[t->n_touched++] = tail;
  tail->touched = true;
  return 0;
}

int tails_push(sw_tails_t *t, sw_tail_t **tailp, const char *app, const char *channel, int64_t seq, int64_t vseq,
               int64_t ts, int64_t log_id, const uint8_t *blob, size_t len, uint64_t hint) {
  sw_tail_t *tail = *tailp;
  if (!tail) {
    if (!(tail = calloc(1, sizeof *tail))) return -ENOMEM;
    if (!(tail->key = make_key(app, channel, seq, NULL, 0, &tail->key_len))) {
      free(tail);
      return -ENOMEM;
    }
    tail->app = tail->key;
    tail->channel = tail->key + strlen(app) + 1;
    tail->seq = seq;
    uv_mutex_lock(&t->mu);
    HASH_ADD_KEYPTR(hh, t->all, tail->key, tail->key_len, tail);
    uv_mutex_unlock(&t->mu);
  }
  if (touch(t, tail)) {
    /* Not in the transaction's list, so no rollback would reap it. */
    uv_mutex_lock(&t->mu);
    reap(t, tail);
    uv_mutex_unlock(&t->mu);
    return -ENOMEM;
  }
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy) return -ENOMEM; /* the rollback reaps an empty tail */
  if (len) memcpy(copy, blob, len);
  uv_mutex_lock(&t->mu); /* readers may be walking ev[] */
  if (tail->n == tail->cap) {
    size_t cap = tail->cap ? tail->cap * 2 : 16;
    sw_tail_ev_t *p = realloc(tail->ev, cap * sizeof *p);
    if (!p) {
      uv_mutex_unlock(&t->mu);
      free(copy);
      return -ENOMEM;
    }
    tail->ev = p;
    tail->cap = cap;
  }
  tail->ev[tail->n++] =
      (sw_tail_ev_t){.vseq = vseq, .ts = ts, .log_id = log_id, .blob = copy, .len = len, .hint = hint};
  uv_mutex_unlock(&t->mu);
  *tailp = tail;
  return 0;
}

int tails_mark_folded(sw_tails_t *t, sw_tail_t *tail) {
  if (touch(t, tail)) return -ENOMEM;
  tail->fold_to = tail->n;
  return 0;
}

/* Frees a tail left empty (under the lock). */
static void reap(sw_tails_t *t, sw_tail_t *tail) {
  if (tail->n) return;
  HASH_DEL(t->all, tail);
  tail_free(tail);
}

void tails_commit(sw_tails_t *t, uint64_t now_ms) {
  uv_mutex_lock(&t->mu);
  for (size_t i = 0; i < t->n_touched; i++) {
    sw_tail_t *tail = t->touched[i];
    tail->touched = false;
    bool grew = tail->n > tail->n_committed; /* before the folded ones go */
    size_t k = tail->fold_to;
    if (k) {
      for (size_t j = 0; j < k; j++) free(tail->ev[j].blob);
      memmove(tail->ev, tail->ev + k, (tail->n - k) * sizeof *tail->ev);
      tail->n -= k;
      tail->fold_to = 0;
    }
    /* The age of a tail counts from its oldest unfolded event. */
    if (k || tail->n_committed == 0) tail->since_ms = now_ms;
    if (grew) tail->last_ms = now_ms;
    tail->n_committed = tail->n;
    reap(t, tail);
  }
  t->n_touched = 0;
  uv_mutex_unlock(&t->mu);
}

void tails_rollback(sw_tails_t *t) {
  uv_mutex_lock(&t->mu);
  for (size_t i = 0; i < t->n_touched; i++) {
    sw_tail_t *tail = t->touched[i];
    tail->touched = false;
    tail->fold_to = 0;
    for (size_t k = tail->n_committed; k < tail->n; k++) free(tail->ev[k].blob);
    tail->n = tail->n_committed;
    reap(t, tail);
  }
  t->n_touched = 0;
  uv_mutex_unlock(&t->mu);
}

void tails_drop_app(sw_tails_t *t, const char *app) {
  uv_mutex_lock(&t->mu);
  sw_tail_t *tail, *tmp;
  HASH_ITER(hh, t->all, tail, tmp) {
    if (strcmp(tail->app, app) != 0 || tail->touched) continue;
    HASH_DEL(t->all, tail);
    tail_free(tail);
  }
  uv_mutex_unlock(&t->mu);
}

int64_t tails_min_log_id(const sw_tails_t *t) {
  int64_t min = INT64_MAX;
  for (const sw_tail_t *tail = t->all; tail; tail = tail->hh.next) {
    size_t i = tail->fold_to;
    if (i < tail->n && tail->ev[i].log_id < min) min = tail->ev[i].log_id;
  }
  return min;
}

void tails_unverify(sw_tails_t *t, const char *app, const char *channel) {
  for (sw_tail_t *tail = t->all; tail; tail = tail->hh.next)
    if (!channel || (strcmp(tail->channel, channel) == 0 && strcmp(tail->app, app) == 0)) tail->verified = false;
}

int64_t tails_channel_max(sw_tails_t *t, const char *app, const char *channel) {
  int64_t max = -1;
  for (sw_tail_t *tail = t->all; tail; tail = tail->hh.next) {
    if (!tail->n_committed || strcmp(tail->channel, channel) || strcmp(tail->app, app)) continue;
    if (tail->ev[tail->n_committed - 1].vseq > max) max = tail->ev[tail->n_committed - 1].vseq;
  }
  return max;
}
