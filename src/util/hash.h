/* hash.h: uthash, with tables that start small.
 *
 * uthash allocates 32 buckets (512 bytes) plus its table header on a table's
 * first insert. Many of our tables belong to one small object and hold one
 * or a few items: every connection has its own attachments table, every
 * channel its presence set and idempotency window. With 10,000 idle
 * connections the 32 buckets alone were a fifth of the server's memory per
 * connection. Tables here start with 4 buckets (64 bytes) and grow as usual:
 * uthash doubles a table when one bucket chain reaches 10 items, whatever
 * the table's size, so a large table pays three early doublings more, once.
 *
 * uthash reads these two constants only when it creates a table (the first
 * HASH_ADD); from then on the table carries its own bucket count, which
 * every other macro uses. So a table created in a file that includes this
 * header and used in one that does not is handled correctly by both. Include
 * it in the header that defines a table's owner (core/conn.h for the
 * attachments), so every file that can add to the table sees it: the values
 * hold for the rest of each file that includes it, after uthash.h has been
 * included by anyone (its include guard keeps the overrides). */
#ifndef SW_UTIL_HASH_H
#define SW_UTIL_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "util/siphash.h"

/* The hash of every uthash table of the server: SipHash-2-4 under a key
 * chosen at start (sw_hash_init), not uthash's unkeyed Jenkins hash. Keys
 * are often the clients' (message ids in the idempotency window, clientIds
 * in presence sets, nonces, capability strings): with an unkeyed hash one
 * can compute keys that share a bucket, and uthash stops splitting buckets
 * that do not spread, so every lookup would walk a chain of them (hash
 * flooding). CMakeLists.txt defines HASH_FUNCTION as SW_UTHASH_HASH for the
 * server's code, so a table is hashed the same way in every file; a file
 * that uses a table without this header does not compile. */
extern uint8_t sw_hash_key[16];
/* Fills sw_hash_key from the system's random source: 0, or -1 if it has
 * none (the key stays as it was). Called once at start, before any table
 * is made; tests keep the all-zero key. */
int sw_hash_init(void);

static inline uint32_t sw_hash_bytes(const void *p, size_t n) {
  sw_siphash_t s;
  siphash_init(&s, sw_hash_key);
  siphash_update(&s, p, n);
  return (uint32_t)siphash_final(&s);
}
#define SW_UTHASH_HASH(keyptr, keylen, hashv) ((hashv) = sw_hash_bytes((keyptr), (size_t)(keylen)))

#include <uthash.h>

#undef HASH_INITIAL_NUM_BUCKETS
#undef HASH_INITIAL_NUM_BUCKETS_LOG2
#define HASH_INITIAL_NUM_BUCKETS 4U
#define HASH_INITIAL_NUM_BUCKETS_LOG2 2U

#endif
