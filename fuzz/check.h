/* fuzz/check.h: CHECK(cond), the fuzzers' assertion. It aborts (libFuzzer
 * then saves the input) with the file, line and condition; unlike assert()
 * it stays on in every build type. */
#ifndef SW_FUZZ_CHECK_H
#define SW_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                     \
      abort();                                                                                     \
    }                                                                                              \
  } while (0)

#endif
