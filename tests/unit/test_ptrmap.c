/* util/ptrmap.h: add/find/del, tombstone reuse, growth, many deletes, and a
 * flood of keys chosen to share one probe chain under one map's key, which
 * another map (another random key) spreads out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/ptrmap.h"

typedef struct item {
  char app[16];
  char name[32];
} item_t;

typedef struct key {
  const char *app, *name;
} lookup_t;

static uint64_t item_hash(const sw_ptrmap_t *m, const void *p) {
  const item_t *it = p;
  return ptrmap_hash_str2(m, it->app, it->name);
}

static bool item_eq(const void *p, const void *k) {
  const item_t *it = p;
  const lookup_t *key = k;
  return strcmp(it->name, key->name) == 0 && strcmp(it->app, key->app) == 0;
}

static item_t *find(const sw_ptrmap_t *m, const char *app, const char *name) {
  lookup_t k = {app, name};
  return m->cap ? ptrmap_find(m, ptrmap_hash_str2(m, app, name), item_eq, &k) : NULL;
}

static void add(sw_ptrmap_t *m, item_t *it) {
  assert_int_equal(ptrmap_reserve(m, item_hash), 0);
  ptrmap_add(m, item_hash(m, it), it);
  /* Never over 3/4 full, tombstones included. */
  assert_true((uint64_t)(m->n + m->tombs) * 4 <= (uint64_t)m->cap * 3);
}

static bool del(sw_ptrmap_t *m, item_t *it) { return ptrmap_del(m, item_hash(m, it), it); }

static item_t *items(size_t n, const char *app) {
  item_t *v = calloc(n, sizeof *v);
  assert_non_null(v);
  for (size_t i = 0; i < n; i++) {
    snprintf(v[i].app, sizeof v[i].app, "%s", app);
    snprintf(v[i].name, sizeof v[i].name, "ch-%zu", i);
  }
  return v;
}

/* How far entry i is from its home slot. */
static uint32_t displacement(const sw_ptrmap_t *m, uint32_t i) {
  uint32_t home = (uint32_t)item_hash(m, m->slot[i]) & (m->cap - 1);
  return (i - home) & (m->cap - 1);
}

static uint32_t max_displacement(const sw_ptrmap_t *m) {
  uint32_t worst = 0;
  const item_t *it;
  SW_PTRMAP_EACH(m, it) {
    uint32_t d = displacement(m, sw_ptrmap_i_);
    if (d > worst) worst = d;
  }
  return worst;
}

static void test_add_find_del(void **state) {
  (void)state;
  sw_ptrmap_t m = {0};
  assert_null(find(&m, "app", "x"));
  assert_false(ptrmap_del(&m, 0, &m));
  item_t a = {"app", "x"}, b = {"app2", "x"}, c = {"app", "y"};
  add(&m, &a);
  add(&m, &b);
  add(&m, &c);
  assert_int_equal(m.n, 3);
  assert_ptr_equal(find(&m, "app", "x"), &a);
  assert_ptr_equal(find(&m, "app2", "x"), &b);
  assert_ptr_equal(find(&m, "app", "y"), &c);
  assert_null(find(&m, "app", "z"));
  assert_null(find(&m, "ap", "px")); /* the same bytes run together: another key */
  assert_true(del(&m, &b));
  assert_false(del(&m, &b));
  assert_null(find(&m, "app2", "x"));
  assert_ptr_equal(find(&m, "app", "x"), &a);
  assert_int_equal(m.n, 2);
  assert_int_equal(m.tombs, 1);
  size_t seen = 0;
  const item_t *it;
  SW_PTRMAP_EACH(&m, it) seen++;
  assert_int_equal(seen, 2);
  ptrmap_free(&m);
  assert_null(m.slot);
  assert_int_equal(m.cap, 0);
}

/* Pairs of strings are absorbed unambiguously, whatever their lengths
 * against the 8-byte words; the hash is the map's (its key). */
static void test_hash(void **state) {
  (void)state;
  sw_ptrmap_t m = {0}, o = {0};
  assert_int_equal(ptrmap_reserve(&m, item_hash), 0);
  assert_int_equal(ptrmap_reserve(&o, item_hash), 0);
  assert_true(ptrmap_hash_str2(&m, "ab", "c") != ptrmap_hash_str2(&m, "a", "bc"));
  assert_true(ptrmap_hash_str2(&m, "abcdefgh", "") != ptrmap_hash_str2(&m, "", "abcdefgh"));
  assert_true(ptrmap_hash_str2(&m, "abcdefgh", "i") != ptrmap_hash_str2(&m, "abcdefghi", ""));
  assert_true(ptrmap_hash_str(&m, "abcdefgh") != ptrmap_hash_str(&m, "abcdefg"));
  assert_true(ptrmap_hash_str(&m, "") != ptrmap_hash_str2(&m, "", ""));
  assert_true(ptrmap_hash_str(&m, "0123456789abcdef0") == ptrmap_hash_str(&m, "0123456789abcdef0"));
  assert_true(memcmp(&m.seed, &o.seed, sizeof m.seed) != 0); /* a random key per map */
  assert_true(ptrmap_hash_str(&m, "x") != ptrmap_hash_str(&o, "x"));
  /* SipHash-2-4 itself (util/siphash.h, checked against the paper) of
   * each string zero-padded to whole words, its NUL included. */
  uint8_t key[16];
  for (int i = 0; i < 16; i++) key[i] = (uint8_t)(i * 7 + 1);
  siphash_init(&m.seed, key);
  const char bytes[] = "abcdefghi\0\0\0\0\0\0\0" "12345678\0\0\0\0\0\0\0\0";
  sw_siphash_t h;
  siphash_init(&h, key);
  siphash_update(&h, bytes, 32);
  assert_true(ptrmap_hash_str2(&m, "abcdefghi", "12345678") == siphash_final(&h));
  siphash_init(&h, key);
  siphash_update(&h, bytes, 16);
  assert_true(ptrmap_hash_str(&m, "abcdefghi") == siphash_final(&h));
  ptrmap_free(&m);
  ptrmap_free(&o);
}

/* A delete then an add reuse the tombstone: churn at a steady size never
 * grows the map, and a rehash drops the tombstones. */
static void test_tombstone_reuse(void **state) {
  (void)state;
  sw_ptrmap_t m = {0};
  item_t *v = items(8, "app");
  for (int i = 0; i < 8; i++) add(&m, &v[i]);
  uint32_t cap = m.cap;
  for (int round = 0; round < 10000; round++) {
    item_t *it = &v[round % 8];
    assert_true(del(&m, it));
    assert_null(find(&m, it->app, it->name));
    add(&m, it);
    assert_ptr_equal(find(&m, it->app, it->name), it);
  }
  assert_int_equal(m.cap, cap);
  assert_int_equal(m.n, 8);
  for (int i = 0; i < 8; i++) assert_ptr_equal(find(&m, "app", v[i].name), &v[i]);
  ptrmap_free(&m);
  free(v);
}

static void test_growth(void **state) {
  (void)state;
  enum { N = 20000 };
  sw_ptrmap_t m = {0};
  item_t *v = items(N, "app");
  for (size_t i = 0; i < N; i++) {
    add(&m, &v[i]);
    if (i % 997 == 0)
      for (size_t j = 0; j <= i; j += 13) assert_ptr_equal(find(&m, "app", v[j].name), &v[j]);
  }
  assert_int_equal(m.n, N);
  assert_true((m.cap & (m.cap - 1)) == 0);
  for (size_t i = 0; i < N; i++) assert_ptr_equal(find(&m, "app", v[i].name), &v[i]);
  assert_null(find(&m, "other", v[0].name));
  ptrmap_free(&m);
  free(v);
}

/* Most entries deleted: the rest stay reachable past the tombstones, and
 * the next rehash (on adds) leaves none. */
static void test_many_deletes(void **state) {
  (void)state;
  enum { N = 5000 };
  sw_ptrmap_t m = {0};
  item_t *v = items(N, "app");
  for (size_t i = 0; i < N; i++) add(&m, &v[i]);
  uint32_t cap = m.cap;
  for (size_t i = 0; i < N; i++)
    if (i % 50) assert_true(del(&m, &v[i]));
  assert_int_equal(m.n, N / 50);
  for (size_t i = 0; i < N; i++) {
    if (i % 50) assert_null(find(&m, "app", v[i].name));
    else assert_ptr_equal(find(&m, "app", v[i].name), &v[i]);
  }
  /* Deleting with iteration, as the server's tick frees idle channels. */
  item_t *it;
  SW_PTRMAP_EACH(&m, it) if (strcmp(it->name, "ch-0") != 0) assert_true(del(&m, it));
  assert_int_equal(m.n, 1);
  /* Adds reuse tombstones, then rehash (dropping the rest) once the map
   * would be over 3/4 full with them. */
  item_t *w = items(N, "app2");
  size_t i = 0;
  while (i < N && m.tombs) add(&m, &w[i++]);
  assert_int_equal(m.tombs, 0);
  assert_true(m.cap <= cap);
  assert_ptr_equal(find(&m, "app", "ch-0"), &v[0]);
  for (size_t j = 0; j < i; j++) assert_ptr_equal(find(&m, "app2", w[j].name), &w[j]);
  ptrmap_free(&m);
  free(v);
  free(w);
}

/* A flood: names computed to share one home slot under map a's key (what
 * an attacker could do with an unkeyed hash) form one long probe chain in
 * a map with that key, and are spread out by any other map's key. */
static void test_flood(void **state) {
  (void)state;
  enum { FLOOD = 300, CAP = 1024 };
  sw_ptrmap_t a = {0};
  item_t probe = {"app", ""};
  assert_int_equal(ptrmap_reserve(&a, item_hash), 0);
  item_t *v = calloc(FLOOD, sizeof *v);
  assert_non_null(v);
  size_t found = 0;
  for (uint64_t i = 0; found < FLOOD; i++) {
    snprintf(probe.name, sizeof probe.name, "flood-%llu", (unsigned long long)i);
    if ((item_hash(&a, &probe) & (CAP - 1)) == 0) v[found++] = probe;
  }
  /* Same key, a table of CAP slots (filler entries of another app to
   * grow it): one chain of FLOOD. */
  sw_ptrmap_t same = {0};
  assert_int_equal(ptrmap_reserve(&same, item_hash), 0);
  same.seed = a.seed;
  for (size_t i = 0; i < FLOOD; i++) add(&same, &v[i]);
  item_t *fill = items(CAP, "fill");
  for (size_t i = 0; same.cap < CAP; i++) add(&same, &fill[i]);
  assert_int_equal(same.cap, CAP);
  assert_true(max_displacement(&same) >= FLOOD - 1);
  /* Another map: its own random key. */
  sw_ptrmap_t b = {0};
  for (size_t i = 0; i < FLOOD; i++) add(&b, &v[i]);
  assert_true(memcmp(&a.seed, &b.seed, sizeof a.seed) != 0);
  assert_true(max_displacement(&b) < 64); /* ~8 expected; FLOOD-1 if the key were shared */
  for (size_t i = 0; i < FLOOD; i++) assert_ptr_equal(find(&b, "app", v[i].name), &v[i]);
  ptrmap_free(&a);
  ptrmap_free(&same);
  ptrmap_free(&b);
  free(v);
  free(fill);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_add_find_del), cmocka_unit_test(test_hash),       cmocka_unit_test(test_tombstone_reuse),
      cmocka_unit_test(test_growth),       cmocka_unit_test(test_many_deletes), cmocka_unit_test(test_flood),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
