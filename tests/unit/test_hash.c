/* Unit tests for small initial hash tables (util/hash.h) on the table that
 * motivated them: a connection's attachments (core/conn.h, core/channel.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/channel.h"
#include "core/conn.h"

/* One attachment: the table starts with 4 buckets, not uthash's 32. */
static void attachments_start_small(void **state) {
  sw_conn_t c = {0};
  sw_channel_t ch = {0};
  sw_attach_t a = {.ch = &ch};
  HASH_ADD_PTR(c.attachments, ch, &a);
  assert_non_null(c.attachments);
  assert_int_equal(c.attachments->hh.tbl->num_buckets, 4);
  assert_int_equal(c.attachments->hh.tbl->log2_num_buckets, 2);
  sw_attach_t *found = NULL;
  sw_channel_t *key = &ch;
  HASH_FIND_PTR(c.attachments, &key, found);
  assert_ptr_equal(found, &a);
  HASH_DEL(c.attachments, &a);
  assert_null(c.attachments);
}

/* A table that starts small still grows: many items stay findable, chains
 * stay short, and deleting everything frees the table. */
static void attachments_grow(void **state) {
  enum { N = 20000 };
  sw_conn_t c = {0};
  sw_channel_t *chans = calloc(N, sizeof *chans);
  sw_attach_t *as = calloc(N, sizeof *as);
  assert_non_null(chans);
  assert_non_null(as);
  for (size_t i = 0; i < N; i++) {
    as[i].ch = &chans[i];
    HASH_ADD_PTR(c.attachments, ch, &as[i]);
  }
  assert_int_equal(HASH_COUNT(c.attachments), N);
  UT_hash_table *tbl = c.attachments->hh.tbl;
  assert_false(tbl->noexpand);
  /* uthash aims at 10 items per bucket at most: N / 10 rounded up to a power of two. */
  assert_true(tbl->num_buckets >= 2048);
  for (size_t i = 0; i < N; i++) {
    sw_attach_t *found = NULL;
    sw_channel_t *key = &chans[i];
    HASH_FIND_PTR(c.attachments, &key, found);
    assert_ptr_equal(found, &as[i]);
  }
  for (size_t i = 0; i < N; i++) HASH_DEL(c.attachments, &as[i]);
  assert_null(c.attachments);
  free(as);
  free(chans);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(attachments_start_small),
      cmocka_unit_test(attachments_grow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
