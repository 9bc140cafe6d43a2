/* hash.c: the key of the server's hash tables (util/hash.h). */
#include "util/hash.h"

#include <openssl/rand.h>

uint8_t sw_hash_key[16];

int sw_hash_init(void) { return RAND_bytes(sw_hash_key, sizeof sw_hash_key) == 1 ? 0 : -1; }
