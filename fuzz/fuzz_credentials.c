/* libFuzzer target for the small parsers of client-supplied credentials and
 * continuity tokens: Basic auth headers, API key strings and channel serials. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/key_auth.h"
#include "core/app.h"
#include "core/serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char out[1024];
  if (key_auth_basic_decode((const char *)data, size, out, sizeof out) == 0 && strlen(out) >= sizeof out)
    abort();

  int64_t seq;
  if (serial_parse((const char *)data, size, &seq) == 0) {
    char back[SW_SERIAL_LEN + 1];
    serial_format(seq, back);
    if (size != SW_SERIAL_LEN || memcmp(back, data, size) != 0) abort(); /* canonical only */
  }

  /* Key strings against an empty registry: every input must be refused cleanly. */
  sw_apps_t apps = {0};
  sw_app_t *app;
  sw_key_t *key;
  sw_error_t err;
  if (apps_key_check(&apps, (const char *)data, size, &app, &key, &err) == 0) abort();
  return 0;
}
