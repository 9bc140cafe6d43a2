/* bench_util.c: histograms, payloads, /proc readers and the worker-side
 * phase helpers shared by every scenario. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/bench.h"

int64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- histogram ------------------------------------------------------------ */

static size_t hist_index(uint64_t us) {
  if (us < BENCH_HIST_LINEAR) return (size_t)us;
  int e = 63 - __builtin_clzll(us); /* >= 7 */
  size_t i = BENCH_HIST_LINEAR + (size_t)(e - 7) * BENCH_HIST_SUB + ((us >> (e - 6)) & (BENCH_HIST_SUB - 1));
  return i < BENCH_HIST_BUCKETS ? i : BENCH_HIST_BUCKETS - 1;
}

/* The upper edge of bucket i, so quantiles err on the slow side. */
static double hist_upper(size_t i) {
  if (i < BENCH_HIST_LINEAR) return (double)i + 1;
  size_t k = i - BENCH_HIST_LINEAR;
  int e = (int)(k / BENCH_HIST_SUB) + 7;
  uint64_t sub = k % BENCH_HIST_SUB;
  return (double)(((uint64_t)1 << e) + ((sub + 1) << (e - 6)));
}

void hist_add(bench_hist_t *h, uint64_t us) {
  h->b[hist_index(us)]++;
  h->n++;
  h->sum_us += us;
  if (us > h->max_us) h->max_us = us;
}

void hist_merge(bench_hist_t *into, const bench_hist_t *from) {
  for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) into->b[i] += from->b[i];
  into->n += from->n;
  into->sum_us += from->sum_us;
  if (from->max_us > into->max_us) into->max_us = from->max_us;
}

double hist_quantile_us(const bench_hist_t *h, double q) {
  if (!h->n) return 0;
  uint64_t want = (uint64_t)(q * (double)h->n);
  if (want >= h->n) want = h->n - 1;
  uint64_t seen = 0;
  for (size_t i = 0; i < BENCH_HIST_BUCKETS; i++) {
    seen += h->b[i];
    if (seen > want) {
      double u = hist_upper(i);
      return u > (double)h->max_us ? (double)h->max_us : u;
    }
  }
  return (double)h->max_us;
}

/* ---- payloads ------------------------------------------------------------- */

/* v in decimal at out; returns the number of digits (at most 20). */
static size_t put_u64(char *out, uint64_t v) {
  char rev[20];
  size_t k = 0;
  do rev[k++] = (char)('0' + v % 10);
  while ((v /= 10) != 0);
  for (size_t i = 0; i < k; i++) out[i] = rev[k - 1 - i];
  return k;
}

size_t bench_payload(char *out, size_t n, uint64_t seq, int64_t t_ns) {
  /* By hand rather than snprintf, which cost as much as the rest of the
   * publish path of the library put together. */
  char head[2 * 20 + 2];
  size_t k = put_u64(head, seq);
  head[k++] = ' ';
  k += put_u64(head + k, t_ns > 0 ? (uint64_t)t_ns : 0);
  head[k++] = ' ';
  if (k >= n) { /* caller's n is always large enough */
    memcpy(out, head, n);
    return k;
  }
  memcpy(out, head, k);
  memset(out + k, 'x', n - k);
  return n;
}

bool bench_payload_parse(const void *p, size_t n, uint64_t *seq, int64_t *t_ns) {
  /* Parse by hand: the data of a delivery is not NUL-terminated for every
   * link, and strtoull on a 100k/s path is measurable. */
  const char *s = p, *end = s + n;
  uint64_t a = 0;
  int64_t t = 0;
  if (s == end || *s < '0' || *s > '9') return false;
  while (s < end && *s >= '0' && *s <= '9') a = a * 10 + (uint64_t)(*s++ - '0');
  if (s == end || *s++ != ' ' || s == end || *s < '0' || *s > '9') return false;
  while (s < end && *s >= '0' && *s <= '9') t = t * 10 + (*s++ - '0');
  *seq = a;
  *t_ns = t;
  return true;
}

/* ---- /proc ---------------------------------------------------------------- */

long proc_rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  long kb = -1;
  while (fgets(line, sizeof line, f))
    if (strncmp(line, "VmRSS:", 6) == 0) {
      kb = strtol(line + 6, NULL, 10);
      break;
    }
  fclose(f);
  return kb;
}

double proc_cpu_s(pid_t pid) { return proc_cpu_split_s(pid, NULL); }

double proc_cpu_split_s(pid_t pid, double *sys_s) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  /* The command name may hold spaces: fields count from the last ')'. */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* After ')': state(3) ppid pgrp session tty tpgid flags minflt cminflt
   * majflt cmajflt utime(14) stime(15). */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
  double tck = (double)sysconf(_SC_CLK_TCK);
  if (sys_s) *sys_s = (double)st / tck;
  return (double)(ut + st) / tck;
}

/* ---- worker helpers ------------------------------------------------------- */

void bench_share(const bench_worker_t *w, int total, int *first, int *n) {
  int procs = w->b->o.procs;
  int base = total / procs, extra = total % procs;
  *first = w->id * base + (w->id < extra ? w->id : extra);
  *n = base + (w->id < extra ? 1 : 0);
}

void bench_ready(bench_worker_t *w) {
  if (w->readied) return;
  w->readied = true;
  atomic_fetch_add(&w->b->sh->ready, 1);
}

void bench_done(bench_worker_t *w) {
  if (w->finished) return;
  w->finished = true;
  atomic_fetch_add(&w->b->sh->done, 1);
}

void bench_fail(bench_worker_t *w, const char *fmt, ...) {
  w->res->errors++;
  if (!w->res->failed) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->res->err, sizeof w->res->err, fmt, ap);
    va_end(ap);
    w->res->failed = 1;
  }
  atomic_store(&w->b->sh->failed, 1);
}

bool bench_in_window(const bench_worker_t *w, int64_t t_start_ns) {
  int64_t from = atomic_load_explicit(&w->b->sh->measure_from_ns, memory_order_relaxed);
  int64_t to = atomic_load_explicit(&w->b->sh->measure_to_ns, memory_order_relaxed);
  return from && t_start_ns >= from && t_start_ns < to;
}

void bench_sample(bench_worker_t *w, bench_hist_t *h, int64_t t_start_ns, int64_t now_ns) {
  if (!bench_in_window(w, t_start_ns)) return;
  int64_t d = now_ns - t_start_ns;
  hist_add(h, d > 0 ? (uint64_t)d / 1000 : 0);
}
