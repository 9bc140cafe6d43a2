/* fuzz_filter.c: libFuzzer target for filter_compile and filter_match
 * (subscription filters of derived channels, proto/filter.c).
 * Invariants: a refusal is 40010 (or 50000 for lack of memory) with a
 * message; input over SW_FILTER_MAX_LEN is refused; a compiled filter
 * evaluates without fault against messages with and without a name and
 * headers of every JSON kind, and compiling the same text twice gives the
 * same answers. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "proto/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  sw_error_t err = {0};
  sw_filter_t *f = filter_compile((const char *)data, size, &err);
  if (!f) {
    CHECK(err.code == 40010 || err.code == 50000);
    CHECK(err.message[0] != '\0');
    return 0;
  }
  CHECK(size <= SW_FILTER_MAX_LEN);
  sw_filter_t *g = filter_compile((const char *)data, size, &err);
  CHECK(g != NULL);
  json_t *hs[] = {
      NULL,
      json_pack("{s:s, s:i, s:b, s:f, s:n}", "name", "x", "number", 26095, "bool", 1, "real", 1.5, "nil"),
      json_pack("{s:{s:i}, s:[i]}", "a", "b", 1, "c", 2),
      json_pack("{}"),
  };
  const char *names[] = {NULL, "", "filtered", "name"};
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
    for (size_t j = 0; j < sizeof names / sizeof names[0]; j++)
      CHECK(filter_match(f, names[j], hs[i]) == filter_match(g, names[j], hs[i]));
  for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) json_decref(hs[i]);
  filter_free(f);
  filter_free(g);
  return 0;
}
