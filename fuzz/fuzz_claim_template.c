/* libFuzzer target for auth/claim_template.
 *
 * Input: a template, a 0x00 byte, then the claims (JSON). Checks, aborting
 * on any violation:
 *   - a template tmpl_check refuses (40000) never expands;
 *   - an expansion is at most SW_TMPL_MAX_LEN bytes and holds exactly as
 *     many of the characters that shape a capability resource (':', '*',
 *     '[', ']') as the template's literal text: no claim value can add a
 *     segment, a wildcard or a qualifier;
 *   - a refusal for a claim is 40101, and names the claim, not its value. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/claim_template.h"

#include "check.h"

/* Counts the resource-shaping characters of a template's literal text. */
static size_t literal_specials(const char *t) {
  size_t n = 0;
  for (size_t i = 0; t[i];) {
    if ((t[i] == '{' && t[i + 1] == '{') || (t[i] == '}' && t[i + 1] == '}')) {
      i += 2;
    } else if (t[i] == '{') {
      const char *c = strchr(t + i, '}');
      i = (size_t)(c - t) + 1;
    } else {
      n += strchr(":*[]", t[i]) != NULL;
      i++;
    }
  }
  return n;
}

static size_t specials(const char *s) {
  size_t n = 0;
  for (; *s; s++) n += strchr(":*[]", *s) != NULL;
  return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, 0, size);
  size_t tlen = nul ? (size_t)(nul - data) : size;
  char *tmpl = malloc(tlen + 1);
  CHECK(tmpl != NULL);
  memcpy(tmpl, data, tlen);
  tmpl[tlen] = '\0';
  json_t *claims = nul ? json_loadb((const char *)nul + 1, size - tlen - 1, 0, NULL) : NULL;
  if (!json_is_object(claims)) {
    json_decref(claims);
    claims = json_pack("{s:s, s:s, s:s}", "sub", "user_1", "org_id", "a:*", "x", "[y]");
  }
  sw_error_t cerr = {0}, err = {0};
  int syntax = tmpl_check(tmpl, &cerr);
  char *out = tmpl_expand(tmpl, claims, &err);
  if (syntax) {
    CHECK(cerr.code == 40000 && !out && (err.code == 40000 || err.code == 40101));
  } else if (out) {
    CHECK(strlen(out) <= SW_TMPL_MAX_LEN);
    CHECK(specials(out) == literal_specials(tmpl));
  } else {
    CHECK(err.code == 40101 || err.code == 40000 || err.code == 50000);
  }
  free(out);
  free(tmpl);
  json_decref(claims);
  return 0;
}
