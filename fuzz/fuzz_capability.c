/* libFuzzer target for auth/capability and auth/channel_name.
 *
 * Input: capability JSON; optionally a second capability after a 0xFF byte.
 * Checks, aborting on any violation:
 *   - a rejected capability gets 40000 with a message that is valid UTF-8;
 *   - canonical text parses again to the same canonical text;
 *   - A ∩ A and A ∩ {"*":["*"]} (and A ∩ B) either fail with 40160/40000 or
 *     grant on every probed channel exactly what both operands grant, and
 *     their canonical text round-trips too;
 *   - channel_name_validate never crashes and its offsets stay in range. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/capability.h"
#include "auth/channel_name.h"

#include "check.h"

#define MAX_PROBES 256

typedef struct probes {
  char *name[MAX_PROBES];
  size_t n;
} probes_t;

static void probe_add(probes_t *p, const char *s, size_t len) {
  if (p->n == MAX_PROBES) return;
  char *c = malloc(len + 1);
  CHECK(c != NULL);
  memcpy(c, s, len);
  c[len] = '\0';
  p->name[p->n++] = c;
}

/* Channel names around a resource: itself, with "*" segments replaced by a
 * literal, and with an extra segment. */
static void probe_resource(probes_t *p, const char *r) {
  size_t len = strlen(r);
  probe_add(p, r, len);
  char *buf = malloc(len * 4 + 8);
  CHECK(buf != NULL);
  static const char *const fills[] = {"x", "x:y", ""};
  for (size_t f = 0; f < 3; f++) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
      bool seg_start = i == 0 || r[i - 1] == ':' || r[i - 1] == ']';
      bool seg_end = i + 1 == len || r[i + 1] == ':';
      if (r[i] == '*' && seg_start && seg_end && !(i > 0 && r[i - 1] == '[')) {
        size_t fl = strlen(fills[f]);
        memcpy(buf + o, fills[f], fl);
        o += fl;
      } else {
        buf[o++] = r[i];
      }
    }
    probe_add(p, buf, o);
    memcpy(buf + o, ":z", 2);
    probe_add(p, buf, o + 2);
    /* "[*]" resources: probe the plain and a meta form of the name. */
    if (o >= 3 && memcmp(buf, "[*]", 3) == 0) {
      probe_add(p, buf + 3, o - 3);
      char *m = malloc(o + 8);
      CHECK(m != NULL);
      memcpy(m, "[meta]", 6);
      memcpy(m + 6, buf + 3, o - 3);
      probe_add(p, m, o + 3);
      free(m);
    }
  }
  free(buf);
}

static void probe_cap(probes_t *p, const sw_cap_t *c) {
  char *canon = cap_canonical(c);
  CHECK(canon != NULL);
  json_t *j = json_loads(canon, 0, NULL);
  CHECK(j != NULL);
  const char *key;
  json_t *v;
  size_t i = 0;
  json_object_foreach(j, key, v) {
    if (i++ == 40) break;
    probe_resource(p, key);
  }
  json_decref(j);
  free(canon);
}

static void check_roundtrip(const sw_cap_t *c) {
  char *canon = cap_canonical(c);
  CHECK(canon != NULL);
  sw_error_t err = {0};
  sw_cap_t *again = cap_parse(canon, strlen(canon), &err);
  if (again == NULL) fprintf(stderr, "reparse of %s failed: %s\n", canon, err.message);
  CHECK(again != NULL);
  char *canon2 = cap_canonical(again);
  CHECK(canon2 != NULL);
  CHECK(strcmp(canon, canon2) == 0);
  free(canon2);
  free(canon);
  cap_free(again);
}

/* x = a ∩ b, or NULL with err: checks the error or the per-channel law. */
static void check_intersection(const sw_cap_t *a, const sw_cap_t *b, const probes_t *p, bool must_succeed) {
  sw_error_t err = {0};
  sw_cap_t *x = cap_intersect(a, b, &err);
  if (x == NULL) {
    CHECK(!must_succeed || err.code == 40000);
    CHECK(err.code == 40160 || err.code == 40000);
    if (err.code == 40160)
      for (size_t i = 0; i < p->n; i++)
        CHECK((cap_ops_for_channel(a, p->name[i]) & cap_ops_for_channel(b, p->name[i])) == 0);
    return;
  }
  for (size_t i = 0; i < p->n; i++) {
    uint32_t want = cap_ops_for_channel(a, p->name[i]) & cap_ops_for_channel(b, p->name[i]);
    uint32_t got = cap_ops_for_channel(x, p->name[i]);
    if (want != got) fprintf(stderr, "channel \"%s\": got 0x%x want 0x%x\n", p->name[i], got, want);
    CHECK(want == got);
  }
  check_roundtrip(x);
  cap_free(x);
}

static void check_name(const char *s, size_t len) {
  sw_channel_name_t out;
  sw_error_t err = {0};
  int rc = channel_name_validate(s, len, &out, &err);
  if (rc == 0) {
    CHECK(out.name_off < len);
    CHECK(out.params_off + out.params_len <= len);
    CHECK(out.filter_off + out.filter_len <= len);
    CHECK(s[out.name_off] != ':' && s[out.name_off] != '[');
  } else {
    CHECK(rc == -40010 && err.code == 40010 && err.status == 400);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const char *in = (const char *)data;
  const uint8_t *sep = memchr(data, 0xFF, size);
  size_t alen = sep != NULL ? (size_t)(sep - data) : size;

  check_name(in, size);
  check_name(in, alen);

  sw_error_t err = {0};
  sw_cap_t *a = cap_parse(in, alen, &err);
  if (a == NULL) {
    CHECK(err.code == 40000 || err.code == 50000);
    json_t *m = json_string(err.message); /* valid UTF-8, or NULL */
    CHECK(m != NULL);
    json_decref(m);
    sw_cap_t *all = cap_all_qualified();
    CHECK(all != NULL);
    char *name = malloc(alen + 1);
    CHECK(name != NULL);
    memcpy(name, in, alen);
    name[alen] = '\0';
    /* Matching arbitrary names must be safe whatever they hold. */
    (void)cap_ops_for_channel_n(all, in, alen);
    (void)cap_ops_for_channel(all, name);
    free(name);
    cap_free(all);
    return 0;
  }

  char *canon = cap_canonical(a);
  CHECK(canon != NULL);
  CHECK(strlen(canon) <= alen); /* canonical text is never longer */
  free(canon);
  check_roundtrip(a);

  probes_t p = {0};
  probe_cap(&p, a);
  probe_add(&p, in, alen);
  probe_add(&p, "plain", 5);
  probe_add(&p, "[meta]plain", 11);

  sw_cap_t *all = cap_all();
  CHECK(all != NULL);
  check_intersection(a, a, &p, true);
  check_intersection(a, all, &p, false);
  check_intersection(all, a, &p, false);
  cap_free(all);

  if (sep != NULL) {
    sw_cap_t *b = cap_parse(in + alen + 1, size - alen - 1, NULL);
    if (b != NULL) {
      probe_cap(&p, b);
      check_intersection(a, b, &p, false);
      check_intersection(b, a, &p, false);
      cap_free(b);
    }
  }

  for (size_t i = 0; i < p.n; i++) {
    (void)cap_ops_for_channel(a, p.name[i]);
    check_name(p.name[i], strlen(p.name[i]));
    free(p.name[i]);
  }
  cap_free(a);
  return 0;
}
