#include "auth/claim_template.h"

#include <stdlib.h>
#include <string.h>

bool tmpl_value_ok(const char *v, size_t n) {
  if (n == 0 || n > SW_TMPL_MAX_VALUE) return false;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)v[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
              c == '.' || c == '@' || c == '|' || c == '-';
    if (!ok) return false;
  }
  return true;
}

/* Walks tmpl; for each literal run calls lit, for each placeholder name
 * calls ph. Returns 0, or -1 with err on a syntax error or when a callback
 * fails. */
typedef int (*lit_fn)(void *ud, const char *s, size_t n, sw_error_t *err);
typedef int (*ph_fn)(void *ud, const char *name, size_t n, sw_error_t *err);

static int walk(const char *t, void *ud, lit_fn lit, ph_fn ph, sw_error_t *err) {
  size_t len = strlen(t);
  if (len > SW_TMPL_MAX_LEN) return errors_set(err, SW_E_BAD_REQUEST, "template longer than %u bytes", SW_TMPL_MAX_LEN), -1;
  size_t i = 0;
  while (i < len) {
    if (t[i] == '{' && i + 1 < len && t[i + 1] == '{') {
      if (lit(ud, "{", 1, err)) return -1;
      i += 2;
    } else if (t[i] == '}') {
      if (i + 1 >= len || t[i + 1] != '}')
        return errors_set(err, SW_E_BAD_REQUEST, "template has a '}' without '{' (write }} for a literal brace)"), -1;
      if (lit(ud, "}", 1, err)) return -1;
      i += 2;
    } else if (t[i] == '{') {
      const char *close = memchr(t + i + 1, '}', len - i - 1);
      const char *open = memchr(t + i + 1, '{', len - i - 1);
      size_t n = close ? (size_t)(close - t - i - 1) : 0;
      if (!close || (open && open < close) || n == 0 || n > SW_TMPL_MAX_NAME)
        return errors_set(err, SW_E_BAD_REQUEST, "template placeholder must be {claim} with a name of 1 to %u bytes",
                          SW_TMPL_MAX_NAME), -1;
      if (ph(ud, t + i + 1, n, err)) return -1;
      i += n + 2;
    } else {
      size_t j = i;
      while (j < len && t[j] != '{' && t[j] != '}') j++;
      if (lit(ud, t + i, j - i, err)) return -1;
      i = j;
    }
  }
  return 0;
}

static int nop_lit(void *ud, const char *s, size_t n, sw_error_t *err) { return 0; }
static int count_ph(void *ud, const char *name, size_t n, sw_error_t *err) {
  (*(size_t *)ud)++;
  return 0;
}

int tmpl_check(const char *tmpl, sw_error_t *err) {
  size_t n = 0;
  return walk(tmpl, &n, nop_lit, count_ph, err) ? -1 : 0;
}

bool tmpl_has_placeholder(const char *tmpl) {
  size_t n = 0;
  sw_error_t err;
  return walk(tmpl, &n, nop_lit, count_ph, &err) == 0 && n > 0;
}

typedef struct expand {
  const json_t *claims;
  char buf[SW_TMPL_MAX_LEN + 1];
  size_t len;
} expand_t;

static int put(expand_t *x, const char *s, size_t n, sw_error_t *err) {
  /* A template passed tmpl_check, so only claim values can make it too
   * long: the token's fault, like any other value a template refuses. */
  if (n > SW_TMPL_MAX_LEN - x->len)
    return errors_set(err, SW_E_INVALID_CREDENTIALS, "the token's claims make a template longer than %u bytes",
                      SW_TMPL_MAX_LEN), -1;
  memcpy(x->buf + x->len, s, n);
  x->len += n;
  return 0;
}

static int put_lit(void *ud, const char *s, size_t n, sw_error_t *err) { return put(ud, s, n, err); }

static int put_claim(void *ud, const char *name, size_t n, sw_error_t *err) {
  expand_t *x = ud;
  char key[SW_TMPL_MAX_NAME + 1];
  memcpy(key, name, n);
  key[n] = '\0';
  const json_t *v = json_object_get(x->claims, key);
  if (!v)
    return errors_set(err, SW_E_INVALID_CREDENTIALS, "the token has no claim %.64s, which the identity provider's template needs",
                      key), -1;
  if (!json_is_string(v) || !tmpl_value_ok(json_string_value(v), json_string_length(v)))
    return errors_set(err, SW_E_INVALID_CREDENTIALS,
                      "the token's claim %.64s is not a string of 1 to %u characters from [A-Za-z0-9_.@|-]", key,
                      SW_TMPL_MAX_VALUE), -1;
  return put(x, json_string_value(v), json_string_length(v), err);
}

static int put_x(void *ud, const char *name, size_t n, sw_error_t *err) { return put(ud, "x", 1, err); }

char *tmpl_sample(const char *tmpl) {
  expand_t *x = malloc(sizeof *x);
  sw_error_t err;
  char *out = NULL;
  if (x) {
    x->len = 0;
    if (walk(tmpl, x, put_lit, put_x, &err) == 0) {
      x->buf[x->len] = '\0';
      out = strdup(x->buf);
    }
  }
  free(x);
  return out;
}

char *tmpl_expand(const char *tmpl, const json_t *claims, sw_error_t *err) {
  expand_t *x = malloc(sizeof *x);
  if (!x) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    return NULL;
  }
  x->claims = claims;
  x->len = 0;
  char *out = NULL;
  if (walk(tmpl, x, put_lit, put_claim, err) == 0) {
    x->buf[x->len] = '\0';
    if (!(out = strdup(x->buf))) errors_set(err, SW_E_INTERNAL, "out of memory");
  }
  free(x);
  return out;
}
