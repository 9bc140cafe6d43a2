#include "core/revocation.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* When a rule is in force, as far as any check from now_ms on can tell. */
static int64_t in_force(int64_t applies_at, int64_t now_ms) { return applies_at > now_ms ? applies_at : now_ms; }

int revocations_add(sw_revocations_t *r, size_t max, int64_t now_ms, const char *key_name, sw_revoke_type_t type,
                    const char *value, int64_t issued_before, int64_t applies_at) {
  if (strlen(value) > SW_REVOCATION_VALUE_MAX) return -EINVAL;
  int64_t from = in_force(applies_at, now_ms);
  for (size_t i = 0; i < r->n; i++) {
    sw_revocation_t *e = &r->rules[i];
    if (e->type != type || strcmp(e->value, value) != 0 || strcmp(e->key_name, key_name) != 0) continue;
    int64_t e_from = in_force(e->applies_at, now_ms);
    if (issued_before <= e->issued_before && from >= e_from) return 0; /* covered already */
    if (issued_before >= e->issued_before && from <= e_from) {
      e->issued_before = issued_before; /* covers e: revokes more tokens, no later */
      e->applies_at = applies_at;
      return 0;
    }
  }
  if (r->n >= max) return -ENOSPC;
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 8;
    sw_revocation_t *n = realloc(r->rules, cap * sizeof *n);
    if (!n) return -ENOMEM;
    r->rules = n;
    r->cap = cap;
  }
  sw_revocation_t *e = &r->rules[r->n];
  e->key_name = strdup(key_name);
  e->value = strdup(value);
  if (!e->key_name || !e->value) {
    free(e->key_name);
    free(e->value);
    return -ENOMEM;
  }
  e->type = type;
  e->issued_before = issued_before;
  e->applies_at = applies_at;
  r->n++;
  return 0;
}

int revocation_parse_target(const char *target, sw_revoke_type_t *type, const char **value) {
  static const struct {
    const char *prefix;
    sw_revoke_type_t type;
  } kinds[] = {{"clientId:", SW_REVOKE_CLIENT_ID},
               {"revocationKey:", SW_REVOKE_REVOCATION_KEY},
               {"channel:", SW_REVOKE_CHANNEL}};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
    size_t n = strlen(kinds[i].prefix);
    if (strncmp(target, kinds[i].prefix, n) == 0 && target[n]) {
      *type = kinds[i].type;
      *value = target + n;
      return 0;
    }
  }
  return -1;
}

void revocations_expire(sw_revocations_t *r, int64_t now_ms, int64_t max_age_ms) {
  size_t j = 0;
  for (size_t i = 0; i < r->n; i++) {
    if (r->rules[i].issued_before + max_age_ms < now_ms) {
      free(r->rules[i].key_name);
      free(r->rules[i].value);
    } else {
      r->rules[j++] = r->rules[i];
    }
  }
  r->n = j;
}

char *revocations_dump(const sw_revocations_t *r) {
  json_t *arr = json_array();
  for (size_t i = 0; i < r->n; i++) {
    const sw_revocation_t *e = &r->rules[i];
    json_array_append_new(arr, json_pack("{s:s, s:i, s:s, s:I, s:I}", "keyName", e->key_name, "type", (int)e->type,
                                         "value", e->value, "issuedBefore", (json_int_t)e->issued_before,
                                         "appliesAt", (json_int_t)e->applies_at));
  }
  char *s = json_dumps(arr, JSON_COMPACT);
  json_decref(arr);
  return s;
}

int revocations_load(sw_revocations_t *r, const char *text) {
  json_t *arr = json_loads(text, 0, NULL);
  if (!json_is_array(arr)) {
    json_decref(arr);
    return -1;
  }
  size_t i;
  json_t *v;
  json_array_foreach(arr, i, v) {
    const char *k = json_string_value(json_object_get(v, "keyName"));
    const char *val = json_string_value(json_object_get(v, "value"));
    json_int_t type = json_integer_value(json_object_get(v, "type"));
    if (!k || !val || type < SW_REVOKE_CLIENT_ID || type > SW_REVOKE_CHANNEL) continue;
    revocations_add(r, SIZE_MAX, INT64_MIN, k, (sw_revoke_type_t)type, val, json_integer_value(json_object_get(v, "issuedBefore")),
                    json_integer_value(json_object_get(v, "appliesAt")));
  }
  json_decref(arr);
  return 0;
}

void revocations_free(sw_revocations_t *r) {
  for (size_t i = 0; i < r->n; i++) {
    free(r->rules[i].key_name);
    free(r->rules[i].value);
  }
  free(r->rules);
  memset(r, 0, sizeof *r);
}
