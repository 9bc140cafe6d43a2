/* Unit tests for small initial hash tables (util/hash.h), and for the
 * table that motivated them, a connection's attachments, which is now no
 * hash table at all (core/conn.h: one inline, then a small array). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/channel.h"
#include "core/conn.h"
#include "util/hash.h"

typedef struct item {
  const void *key;
  UT_hash_handle hh;
} item_t;

/* One item: the table starts with 4 buckets, not uthash's 32. */
static void tables_start_small(void **state) {
  item_t *set = NULL, it = {.key = &it};
  HASH_ADD_PTR(set, key, &it);
  assert_non_null(set);
  assert_int_equal(set->hh.tbl->num_buckets, 4);
  assert_int_equal(set->hh.tbl->log2_num_buckets, 2);
  item_t *found = NULL;
  const void *key = &it;
  HASH_FIND_PTR(set, &key, found);
  assert_ptr_equal(found, &it);
  HASH_DEL(set, &it);
  assert_null(set);
}

/* A table that starts small still grows: many items stay findable, chains
 * stay short, and deleting everything frees the table. */
static void tables_grow(void **state) {
  enum { N = 20000 };
  item_t *set = NULL;
  item_t *items = calloc(N, sizeof *items);
  assert_non_null(items);
  for (size_t i = 0; i < N; i++) {
    items[i].key = &items[i];
    HASH_ADD_PTR(set, key, &items[i]);
  }
  assert_int_equal(HASH_COUNT(set), N);
  UT_hash_table *tbl = set->hh.tbl;
  assert_false(tbl->noexpand);
  /* uthash aims at 10 items per bucket at most: N / 10 rounded up to a power of two. */
  assert_true(tbl->num_buckets >= 2048);
  for (size_t i = 0; i < N; i++) {
    item_t *found = NULL;
    const void *key = &items[i];
    HASH_FIND_PTR(set, &key, found);
    assert_ptr_equal(found, &items[i]);
  }
  for (size_t i = 0; i < N; i++) HASH_DEL(set, &items[i]);
  assert_null(set);
  free(items);
}

/* One attachment is held inline: no allocation; removing it empties the set. */
static void attachments_one_inline(void **state) {
  sw_conn_t c = {0};
  sw_channel_t ch = {0}, other = {0};
  sw_attach_t a = {.ch = &ch};
  assert_null(conn_attachment(&c, &ch));
  assert_int_equal(conn_attachment_add(&c, &ch, &a), 0);
  assert_int_equal(c.n_att, 1);
  assert_int_equal(c.att_cap, 1);
  assert_ptr_equal(conn_attachment(&c, &ch), &a);
  assert_null(conn_attachment(&c, &other));
  assert_ptr_equal(conn_attachment_at(&c, 0), &a);
  conn_attachment_remove(&c, &a);
  assert_int_equal(c.n_att, 0);
  assert_null(conn_attachment(&c, &ch));
  /* Added again, still inline. */
  assert_int_equal(conn_attachment_add(&c, &ch, &a), 0);
  assert_int_equal(c.att_cap, 1);
}

/* Many attachments: all findable, kept in the order they were made (also
 * across removals), and back inline once one is left. */
static void attachments_many_in_order(void **state) {
  enum { N = 300 };
  sw_conn_t c = {0};
  sw_channel_t *chans = calloc(N, sizeof *chans);
  sw_attach_t *as = calloc(N, sizeof *as);
  assert_non_null(chans);
  assert_non_null(as);
  for (uint32_t i = 0; i < N; i++) {
    as[i].ch = &chans[i];
    assert_int_equal(conn_attachment_add(&c, &chans[i], &as[i]), 0);
  }
  assert_int_equal(c.n_att, N);
  for (uint32_t i = 0; i < N; i++) {
    assert_ptr_equal(conn_attachment(&c, &chans[i]), &as[i]);
    assert_ptr_equal(conn_attachment_at(&c, i), &as[i]);
  }
  /* Remove every even one: the odd ones keep their order. */
  for (uint32_t i = 0; i < N; i += 2) conn_attachment_remove(&c, &as[i]);
  assert_int_equal(c.n_att, N / 2);
  for (uint32_t i = 0; i < N / 2; i++) assert_ptr_equal(conn_attachment_at(&c, i), &as[2 * i + 1]);
  for (uint32_t i = 0; i < N; i += 2) assert_null(conn_attachment(&c, &chans[i]));
  /* Removing one not in the set changes nothing. */
  conn_attachment_remove(&c, &as[0]);
  assert_int_equal(c.n_att, N / 2);
  for (uint32_t i = 1; i < N - 1; i += 2) conn_attachment_remove(&c, &as[i]);
  assert_int_equal(c.n_att, 1);
  assert_int_equal(c.att_cap, 1); /* the array is gone */
  assert_ptr_equal(conn_attachment(&c, &chans[N - 1]), &as[N - 1]);
  conn_attachment_remove(&c, &as[N - 1]);
  assert_int_equal(c.n_att, 0);
  free(as);
  free(chans);
}

typedef struct named {
  const char *name;
  UT_hash_handle hh;
} named_t;

/* Every table hashes with SipHash under sw_hash_key (util/hash.h), not
 * uthash's unkeyed Jenkins hash: another key, another hash of the same
 * bytes; and a table made under a random key finds what it holds. */
static void tables_hash_with_the_key(void **state) {
  (void)state;
  unsigned a, b, jen;
  memset(sw_hash_key, 0, sizeof sw_hash_key);
  HASH_FUNCTION("client-chosen-id", 16, a);
  assert_true(a == sw_hash_bytes("client-chosen-id", 16));
  HASH_JEN("client-chosen-id", 16, jen);
  assert_true(a != jen);
  sw_hash_key[3] = 1;
  HASH_FUNCTION("client-chosen-id", 16, b);
  assert_true(a != b);
  assert_int_equal(sw_hash_init(), 0);
  named_t items[100], *set = NULL, *found;
  char names[100][16];
  for (int i = 0; i < 100; i++) {
    snprintf(names[i], sizeof names[i], "id-%d", i);
    items[i].name = names[i];
    HASH_ADD_KEYPTR(hh, set, items[i].name, strlen(items[i].name), &items[i]);
  }
  for (int i = 0; i < 100; i++) {
    HASH_FIND_STR(set, names[i], found);
    assert_ptr_equal(found, &items[i]);
  }
  HASH_FIND_STR(set, "id-100", found);
  assert_null(found);
  HASH_CLEAR(hh, set);
  memset(sw_hash_key, 0, sizeof sw_hash_key);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(tables_hash_with_the_key),
      cmocka_unit_test(tables_start_small),
      cmocka_unit_test(tables_grow),
      cmocka_unit_test(attachments_one_inline),
      cmocka_unit_test(attachments_many_in_order),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
