#include "auth/capability.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/pmsg.h"

/* Operation names, indexed by SW_OP_*. */
static const char *const op_names[SW_OP_COUNT] = {
    [SW_OP_SUBSCRIBE] = "subscribe",
    [SW_OP_PUBLISH] = "publish",
    [SW_OP_PRESENCE] = "presence",
    [SW_OP_HISTORY] = "history",
    [SW_OP_OBJECT_SUBSCRIBE] = "object-subscribe",
    [SW_OP_OBJECT_PUBLISH] = "object-publish",
    [SW_OP_ANNOTATION_SUBSCRIBE] = "annotation-subscribe",
    [SW_OP_ANNOTATION_PUBLISH] = "annotation-publish",
    [SW_OP_MESSAGE_UPDATE_OWN] = "message-update-own",
    [SW_OP_MESSAGE_UPDATE_ANY] = "message-update-any",
    [SW_OP_MESSAGE_DELETE_OWN] = "message-delete-own",
    [SW_OP_MESSAGE_DELETE_ANY] = "message-delete-any",
    [SW_OP_STATS] = "stats",
    [SW_OP_CHANNEL_METADATA] = "channel-metadata",
    [SW_OP_PUSH_SUBSCRIBE] = "push-subscribe",
    [SW_OP_PUSH_ADMIN] = "push-admin",
    [SW_OP_PRIVILEGED_HEADERS] = "privileged-headers",
};

/* The operations in byte-wise order of their names, for canonical output
 * (the unit tests check that this order is sorted). */
static const unsigned char op_sorted[SW_OP_COUNT] = {
    SW_OP_ANNOTATION_PUBLISH, SW_OP_ANNOTATION_SUBSCRIBE, SW_OP_CHANNEL_METADATA, SW_OP_HISTORY,
    SW_OP_MESSAGE_DELETE_ANY, SW_OP_MESSAGE_DELETE_OWN,   SW_OP_MESSAGE_UPDATE_ANY, SW_OP_MESSAGE_UPDATE_OWN,
    SW_OP_OBJECT_PUBLISH,     SW_OP_OBJECT_SUBSCRIBE,     SW_OP_PRESENCE,         SW_OP_PRIVILEGED_HEADERS,
    SW_OP_PUBLISH,            SW_OP_PUSH_ADMIN,           SW_OP_PUSH_SUBSCRIBE,   SW_OP_STATS,
    SW_OP_SUBSCRIBE,
};

_Static_assert(SW_OP_COUNT <= 31, "op masks are uint32_t");

enum { Q_NONE, Q_ANY, Q_NAMED };

/* One resource. text points into the capability's own allocation. */
typedef struct cap_res {
  const char *text; /* whole resource, NUL-terminated */
  size_t len;
  size_t qual_len; /* qualifier text inside "[...]" when qkind == Q_NAMED */
  size_t pat_off;  /* start of the pattern in text */
  uint32_t ops;
  unsigned char qkind;
  bool star; /* the operation list was ["*"] */
} cap_res_t;

/* Resources sorted by text (byte-wise), unique; their strings follow the
 * array in the same allocation, so one free() releases everything. */
struct sw_cap {
  unsigned refs; /* cap_ref/cap_free; the loop thread's only */
  size_t n;
  cap_res_t res[];
};

/* A resource before it is packed into an sw_cap_t. */
typedef struct cap_entry {
  const char *text;
  size_t len;
  uint32_t ops;
  bool star;
} cap_entry_t;

const char *cap_op_name(int op) {
  if (op < 0 || op >= SW_OP_COUNT) return NULL;
  return op_names[op];
}

int cap_op_from_name(const char *name, size_t len) {
  if (name == NULL) return -1;
  for (int i = 0; i < SW_OP_COUNT; i++)
    if (strlen(op_names[i]) == len && memcmp(op_names[i], name, len) == 0) return i;
  return -1;
}

/* Byte-wise order, a shorter prefix first: the order of strcmp for strings
 * without NUL, which resources never contain. */
static int bytes_cmp(const char *a, size_t al, const char *b, size_t bl) {
  int r = memcmp(a, b, al < bl ? al : bl);
  if (r != 0) return r;
  return al < bl ? -1 : (al > bl ? 1 : 0);
}

static int entry_cmp(const void *x, const void *y) {
  const cap_entry_t *a = x, *b = y;
  return bytes_cmp(a->text, a->len, b->text, b->len);
}

static bool is_qual_char(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.';
}

/* Splits a resource into qualifier and pattern; false if it is invalid
 * (see the grammar in capability.h). Fills kind, qual_len and pat_off. */
static bool res_split(const char *t, size_t len, unsigned char *kind, size_t *qual_len, size_t *pat_off) {
  if (len == 0) return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)t[i];
    if (c < 0x20 || c == 0x7F) return false;
  }
  *kind = Q_NONE;
  *qual_len = 0;
  *pat_off = 0;
  if (t[0] == '[') {
    const char *close = memchr(t, ']', len);
    if (close == NULL) return false;
    size_t ql = (size_t)(close - t) - 1;
    if (ql == 0) return false;
    if (ql == 1 && t[1] == '*') {
      *kind = Q_ANY;
    } else {
      for (size_t i = 1; i <= ql; i++)
        if (!is_qual_char((unsigned char)t[i])) return false;
      *kind = Q_NAMED;
      *qual_len = ql;
    }
    *pat_off = ql + 2;
  }
  /* The pattern must not be empty, nor start with "[": no channel name
   * has a second prefix, and "[*][x" intersected with "*" would give "[x",
   * which reads back as a malformed qualifier. */
  return *pat_off < len && t[*pat_off] != '[';
}

/* Packs sorted, unique entries into one allocation. NULL when out of
 * memory or when an entry is not a valid resource (callers validate first,
 * so that means a bug rather than bad input). */
static sw_cap_t *cap_build(const cap_entry_t *e, size_t n) {
  size_t bytes = sizeof(sw_cap_t) + n * sizeof(cap_res_t);
  for (size_t i = 0; i < n; i++) bytes += e[i].len + 1;
  sw_cap_t *c = malloc(bytes);
  if (c == NULL) return NULL;
  c->refs = 1;
  c->n = n;
  char *pool = (char *)&c->res[n];
  for (size_t i = 0; i < n; i++) {
    cap_res_t *r = &c->res[i];
    memcpy(pool, e[i].text, e[i].len);
    pool[e[i].len] = '\0';
    r->text = pool;
    r->len = e[i].len;
    r->ops = e[i].star ? SW_OPS_ALL : e[i].ops;
    r->star = e[i].star;
    pool += e[i].len + 1;
    if (!res_split(r->text, r->len, &r->qkind, &r->qual_len, &r->pat_off)) {
      free(c);
      return NULL;
    }
  }
  return c;
}

/* Bytes of s to quote in a message: at most max, never cutting a UTF-8
 * sequence, since messages are sent as JSON strings. */
static int quote_len(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n <= max) return (int)n;
  while (max > 0 && ((unsigned char)s[max] & 0xC0u) == 0x80u) max--;
  return (int)max;
}

static sw_cap_t *parse_fail(sw_error_t *err, json_t *root, cap_entry_t *entries, const char *why,
                            const char *key) {
  if (err != NULL) {
    if (key != NULL)
      errors_set(err, SW_E_BAD_REQUEST, "Invalid capability: %s (resource \"%.*s\")", why,
                 quote_len(key, 64), key);
    else
      errors_set(err, SW_E_BAD_REQUEST, "Invalid capability: %s", why);
  }
  json_decref(root);
  free(entries);
  return NULL;
}

sw_cap_t *cap_parse(const char *json, size_t len, sw_error_t *err) {
  if (json == NULL) return parse_fail(err, NULL, NULL, "missing", NULL);
  if (len > SW_CAP_MAX_INPUT) return parse_fail(err, NULL, NULL, "longer than 65536 bytes", NULL);

  json_error_t jerr;
  /* Duplicate keys are refused: which list would win is a parser detail. */
  json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
  if (root == NULL) {
    /* jansson quotes the input near the error, possibly cutting a UTF-8
     * sequence; keep printable ASCII so the message stays valid JSON. */
    char why[200];
    int n0 = snprintf(why, sizeof why, "malformed JSON (%s)", jerr.text);
    for (int k = 0; k < n0 && k < (int)sizeof why - 1; k++)
      if ((unsigned char)why[k] < 0x20 || (unsigned char)why[k] > 0x7E) why[k] = '?';
    return parse_fail(err, NULL, NULL, why, NULL);
  }
  if (!json_is_object(root)) return parse_fail(err, root, NULL, "not a JSON object", NULL);
  size_t n = json_object_size(root);
  if (n == 0) return parse_fail(err, root, NULL, "no resources", NULL);
  if (n > SW_CAP_MAX_RESOURCES) return parse_fail(err, root, NULL, "more than 1000 resources", NULL);

  cap_entry_t *entries = calloc(n, sizeof *entries);
  if (entries == NULL) return parse_fail(err, root, NULL, "out of memory", NULL);

  size_t i = 0;
  const char *key;
  json_t *ops;
  json_object_foreach(root, key, ops) {
    size_t klen = strlen(key);
    unsigned char kind;
    size_t ql, po;
    if (klen > SW_CAP_MAX_RESOURCE_LEN) return parse_fail(err, root, entries, "resource too long", key);
    if (!res_split(key, klen, &kind, &ql, &po)) return parse_fail(err, root, entries, "invalid resource", key);
    if (!json_is_array(ops)) return parse_fail(err, root, entries, "operations not an array", key);
    size_t nops = json_array_size(ops);
    if (nops == 0) return parse_fail(err, root, entries, "empty operation list", key);
    cap_entry_t *e = &entries[i++];
    e->text = key;
    e->len = klen;
    size_t k;
    json_t *op;
    json_array_foreach(ops, k, op) {
      if (!json_is_string(op)) return parse_fail(err, root, entries, "operation not a string", key);
      const char *s = json_string_value(op);
      size_t sl = json_string_length(op);
      if (sl == 1 && s[0] == '*') {
        if (nops != 1) return parse_fail(err, root, entries, "'*' mixed with other operations", key);
        e->star = true;
        continue;
      }
      int o = cap_op_from_name(s, sl);
      if (o < 0) {
        char why[80];
        snprintf(why, sizeof why, "unknown operation \"%.*s\"", quote_len(s, 32), s);
        return parse_fail(err, root, entries, why, key);
      }
      e->ops |= SW_OP_BIT(o);
    }
  }
  qsort(entries, n, sizeof *entries, entry_cmp);
  sw_cap_t *c = cap_build(entries, n);
  free(entries);
  json_decref(root); /* after cap_build: entries point into root's keys */
  if (c == NULL && err != NULL) errors_set(err, SW_E_INTERNAL, "Out of memory parsing a capability");
  return c;
}

sw_cap_t *cap_all(void) {
  static const cap_entry_t e = {"*", 1, SW_OPS_ALL, true};
  return cap_build(&e, 1);
}

sw_cap_t *cap_all_qualified(void) {
  static const cap_entry_t e = {"[*]*", 4, SW_OPS_ALL, true};
  return cap_build(&e, 1);
}

sw_cap_t *cap_ref(sw_cap_t *c) {
  if (c != NULL) c->refs++;
  return c;
}

void cap_free(sw_cap_t *c) {
  if (c != NULL && --c->refs == 0) free(c);
}

size_t cap_count(const sw_cap_t *c) { return c != NULL ? c->n : 0; }

/* End of the ':'-delimited segment starting at i. */
static size_t seg_end(const char *s, size_t len, size_t i) {
  const char *colon = memchr(s + i, ':', len - i);
  return colon != NULL ? (size_t)(colon - s) : len;
}

/* Whether pattern p matches name n (both non-empty or n empty = one empty
 * segment). A "*" segment matches any one segment; as the last segment it
 * matches all remaining segments, of which there is at least one. */
static bool pat_match(const char *p, size_t pl, const char *n, size_t nl) {
  size_t pi = 0, ni = 0;
  for (;;) {
    size_t pe = seg_end(p, pl, pi), ne = seg_end(n, nl, ni);
    bool star = pe - pi == 1 && p[pi] == '*';
    bool p_last = pe == pl, n_last = ne == nl;
    if (star && p_last) return true;
    if (!star && (pe - pi != ne - ni || memcmp(p + pi, n + ni, pe - pi) != 0)) return false;
    if (p_last || n_last) return p_last && n_last;
    pi = pe + 1;
    ni = ne + 1;
  }
}

static bool res_matches(const cap_res_t *r, bool qualified, const char *q, size_t ql, const char *name,
                        size_t nl) {
  switch (r->qkind) {
  case Q_NONE:
    if (qualified) return false;
    break;
  case Q_NAMED:
    if (!qualified || r->qual_len != ql || memcmp(r->text + 1, q, ql) != 0) return false;
    break;
  default: /* Q_ANY */
    break;
  }
  return pat_match(r->text + r->pat_off, r->len - r->pat_off, name, nl);
}

/* Length of a channel name without its "::$..." suffix: Ably matches
 * capabilities on the name a feature's channel derives from, so a token
 * for "room" covers Chat's "room::$chat" (and any other "::$" channel of
 * it). The first "::$" ends the name; a name without one is unchanged. */
static size_t name_base_len(const char *name, size_t nl) {
  for (size_t i = 0; i + 3 <= nl; i++)
    if (name[i] == ':' && name[i + 1] == ':' && name[i + 2] == '$') return i;
  return nl;
}

uint32_t cap_ops_for_channel_n(const sw_cap_t *c, const char *ch, size_t len) {
  if (c == NULL || ch == NULL) return 0;
  bool qualified = false;
  const char *q = NULL;
  size_t ql = 0;
  const char *name = ch;
  size_t nl = len;
  if (len > 0 && ch[0] == '[') {
    const char *close = memchr(ch, ']', len);
    if (close == NULL) return 0; /* invalid name: deny */
    const char *inner = ch + 1;
    size_t il = (size_t)(close - inner);
    const char *qm = memchr(inner, '?', il);
    ql = qm != NULL ? (size_t)(qm - inner) : il;
    /* Params and filters select a view of the base channel, whose rights
     * apply; any other qualifier names a different kind of channel. */
    qualified = !(ql == 0 || (ql >= 7 && memcmp(inner, "filter=", 7) == 0));
    q = inner;
    name = close + 1;
    nl = len - (size_t)(name - ch);
  }
  nl = name_base_len(name, nl);
  uint32_t ops = 0;
  for (size_t i = 0; i < c->n && ops != SW_OPS_ALL; i++) {
    const cap_res_t *r = &c->res[i];
    if ((ops | r->ops) != ops && res_matches(r, qualified, q, ql, name, nl)) ops |= r->ops;
  }
  return ops;
}

uint32_t cap_ops_for_channel(const sw_cap_t *c, const char *channel) {
  if (channel == NULL) return 0;
  return cap_ops_for_channel_n(c, channel, strlen(channel));
}

bool cap_allows(const sw_cap_t *c, const char *channel, int op) {
  if (op < 0 || op >= SW_OP_COUNT) return false;
  return (cap_ops_for_channel(c, channel) & SW_OP_BIT(op)) != 0;
}

uint32_t cap_app_ops(const sw_cap_t *c) {
  if (c == NULL) return 0;
  uint32_t ops = 0;
  for (size_t i = 0; i < c->n; i++) {
    const cap_res_t *r = &c->res[i];
    if (r->qkind != Q_NAMED && r->len - r->pat_off == 1 && r->text[r->pat_off] == '*') ops |= r->ops;
  }
  return ops;
}

uint32_t cap_modes_for_ops(uint32_t ops) {
  uint32_t m = 0;
  if (ops & SW_OP_BIT(SW_OP_SUBSCRIBE))
    m |= SW_MODE_SUBSCRIBE | SW_MODE_PRESENCE_SUBSCRIBE | SW_MODE_OBJECT_SUBSCRIBE;
  if (ops & SW_OP_BIT(SW_OP_PUBLISH)) m |= SW_MODE_PUBLISH;
  if (ops & SW_OP_BIT(SW_OP_PRESENCE)) m |= SW_MODE_PRESENCE;
  if (ops & SW_OP_BIT(SW_OP_OBJECT_SUBSCRIBE)) m |= SW_MODE_OBJECT_SUBSCRIBE;
  if (ops & SW_OP_BIT(SW_OP_OBJECT_PUBLISH)) m |= SW_MODE_OBJECT_PUBLISH;
  if (ops & SW_OP_BIT(SW_OP_ANNOTATION_SUBSCRIBE)) m |= SW_MODE_ANNOTATION_SUBSCRIBE;
  if (ops & SW_OP_BIT(SW_OP_ANNOTATION_PUBLISH)) m |= SW_MODE_ANNOTATION_PUBLISH;
  return m;
}

/* ---- intersection ---- */

/* A pattern as fixed segments plus an optional trailing "*" that matches one
 * or more further segments ("a:*" = fixed "a" + tail; "*" = no fixed
 * segment + tail). */
typedef struct pat {
  const char *fixed;
  size_t flen;
  bool tail;
  bool empty; /* no fixed segment at all (only for "*") */
} pat_t;

static pat_t pat_of(const char *p, size_t pl) {
  pat_t r = {p, pl, false, false};
  if (pl == 1 && p[0] == '*') {
    r.tail = true;
    r.empty = true;
    r.flen = 0;
  } else if (pl >= 2 && p[pl - 1] == '*' && p[pl - 2] == ':') {
    r.tail = true;
    r.flen = pl - 2;
  }
  return r;
}

typedef struct seg_it {
  const char *s;
  size_t len, pos;
  bool done;
} seg_it_t;

static seg_it_t seg_it(const pat_t *p) {
  seg_it_t it = {p->fixed, p->flen, 0, p->empty};
  return it;
}

static bool seg_next(seg_it_t *it, const char **seg, size_t *sl) {
  if (it->done) return false;
  size_t e = seg_end(it->s, it->len, it->pos);
  *seg = it->s + it->pos;
  *sl = e - it->pos;
  if (e == it->len) it->done = true;
  it->pos = e + 1;
  return true;
}

static bool is_star(const char *s, size_t l) { return l == 1 && s[0] == '*'; }

/* Writes into out (room for at least al + bl + 2 bytes) the pattern
 * matching exactly the names both a and b match; returns its length, or 0
 * if there is no such name. */
static size_t pat_intersect(const char *a, size_t al, const char *b, size_t bl, char *out) {
  pat_t pa = pat_of(a, al), pb = pat_of(b, bl);
  seg_it_t ia = seg_it(&pa), ib = seg_it(&pb);
  size_t o = 0, nseg = 0;
  for (;;) {
    const char *sa = NULL, *sb = NULL, *take;
    size_t la = 0, lb = 0, lt;
    bool ha = seg_next(&ia, &sa, &la), hb = seg_next(&ib, &sb, &lb);
    if (!ha && !hb) break;
    if (ha && hb) {
      if (is_star(sa, la)) {
        take = sb; lt = lb;
      } else if (is_star(sb, lb) || (la == lb && memcmp(sa, sb, la) == 0)) {
        take = sa; lt = la;
      } else {
        return 0;
      }
    } else if (ha) {
      if (!pb.tail) return 0; /* b has fewer segments and no tail */
      take = sa; lt = la;
    } else {
      if (!pa.tail) return 0;
      take = sb; lt = lb;
    }
    if (nseg++ > 0) out[o++] = ':';
    memcpy(out + o, take, lt);
    o += lt;
  }
  if (pa.tail && pb.tail) {
    if (nseg > 0) out[o++] = ':';
    out[o++] = '*';
    return o;
  }
  /* A tail needs at least one segment beyond the fixed ones: with equal
   * fixed counts, a tail on one side only leaves nothing in common. */
  size_t na = pa.empty ? 0 : 1, nb = pb.empty ? 0 : 1;
  for (size_t i = 0; i < pa.flen; i++) na += pa.fixed[i] == ':';
  for (size_t i = 0; i < pb.flen; i++) nb += pb.fixed[i] == ':';
  if (pa.tail && na >= nb) return 0;
  if (pb.tail && nb >= na) return 0;
  return o;
}

/* Writes the resource common to r and s into out (room for r->len + s->len
 * + 2 bytes); returns its length or 0 when they share no channel. */
static size_t res_intersect(const cap_res_t *r, const cap_res_t *s, char *out) {
  const cap_res_t *qual = NULL; /* whose qualifier the result carries */
  if (r->qkind == Q_NONE || s->qkind == Q_NONE) {
    if (r->qkind == Q_NAMED || s->qkind == Q_NAMED) return 0;
  } else if (r->qkind == Q_NAMED && s->qkind == Q_NAMED) {
    if (r->qual_len != s->qual_len || memcmp(r->text + 1, s->text + 1, r->qual_len) != 0) return 0;
    qual = r;
  } else if (r->qkind == Q_NAMED) {
    qual = r;
  } else if (s->qkind == Q_NAMED) {
    qual = s;
  } else {
    qual = r; /* both [*] */
  }
  size_t o = 0;
  if (qual != NULL) {
    memcpy(out, qual->text, qual->pat_off);
    o = qual->pat_off;
  }
  size_t pl = pat_intersect(r->text + r->pat_off, r->len - r->pat_off, s->text + s->pat_off,
                            s->len - s->pat_off, out + o);
  return pl == 0 ? 0 : o + pl;
}

/* Result entries owning their text, kept sorted for lookup. */
typedef struct acc {
  cap_entry_t *e;
  size_t n, cap, bytes;
} acc_t;

static void acc_free(acc_t *a) {
  for (size_t i = 0; i < a->n; i++) free((char *)a->e[i].text);
  free(a->e);
}

/* Adds or merges a resource; 0, or -SW_E_BAD_REQUEST when over the limits,
 * -SW_E_INTERNAL when out of memory. */
static int acc_add(acc_t *a, const char *t, size_t len, uint32_t ops, bool star) {
  size_t lo = 0, hi = a->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    int r = bytes_cmp(a->e[mid].text, a->e[mid].len, t, len);
    if (r == 0) {
      a->e[mid].ops |= ops;
      a->e[mid].star = a->e[mid].star || star;
      return 0;
    }
    if (r < 0) lo = mid + 1;
    else hi = mid;
  }
  /* Every result must survive cap_parse of its canonical text. */
  if (len > SW_CAP_MAX_RESOURCE_LEN || a->n >= SW_CAP_MAX_RESOURCES || a->bytes + len + 8 > SW_CAP_MAX_INPUT)
    return -SW_E_BAD_REQUEST;
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 16;
    cap_entry_t *ne = realloc(a->e, nc * sizeof *ne);
    if (ne == NULL) return -SW_E_INTERNAL;
    a->e = ne;
    a->cap = nc;
  }
  char *copy = malloc(len + 1);
  if (copy == NULL) return -SW_E_INTERNAL;
  memcpy(copy, t, len);
  copy[len] = '\0';
  memmove(&a->e[lo + 1], &a->e[lo], (a->n - lo) * sizeof *a->e);
  a->e[lo] = (cap_entry_t){copy, len, ops, star};
  a->n++;
  a->bytes += len + 8; /* quotes, colon, brackets, comma: a lower bound */
  return 0;
}

sw_cap_t *cap_intersect(const sw_cap_t *req, const sw_cap_t *key, sw_error_t *err) {
  if (req == NULL || key == NULL) {
    if (err != NULL) errors_set(err, SW_E_CAPABILITY_DENIED, "Capability intersection is empty");
    return NULL;
  }
  size_t maxr = 0, maxk = 0;
  for (size_t i = 0; i < req->n; i++) maxr = req->res[i].len > maxr ? req->res[i].len : maxr;
  for (size_t i = 0; i < key->n; i++) maxk = key->res[i].len > maxk ? key->res[i].len : maxk;
  char *buf = malloc(maxr + maxk + 2);
  acc_t a = {0};
  int rc = buf == NULL ? -SW_E_INTERNAL : 0;

  for (size_t i = 0; i < req->n && rc == 0; i++) {
    for (size_t j = 0; j < key->n && rc == 0; j++) {
      const cap_res_t *r = &req->res[i], *k = &key->res[j];
      uint32_t ops = r->ops & k->ops;
      if (ops == 0) continue;
      size_t len = res_intersect(r, k, buf);
      if (len == 0) continue;
      rc = acc_add(&a, buf, len, ops, r->star && k->star);
    }
  }
  free(buf);

  sw_cap_t *c = NULL;
  if (rc == 0 && a.n == 0) {
    if (err != NULL) errors_set(err, SW_E_CAPABILITY_DENIED, "Capability intersection is empty");
  } else if (rc == -SW_E_BAD_REQUEST) {
    if (err != NULL) errors_set(err, SW_E_BAD_REQUEST, "Invalid capability: intersection is too large");
  } else if (rc == 0) {
    c = cap_build(a.e, a.n);
    char *canon = c != NULL ? cap_canonical(c) : NULL;
    if (c == NULL || canon == NULL) {
      if (err != NULL) errors_set(err, SW_E_INTERNAL, "Out of memory intersecting capabilities");
      cap_free(c);
      c = NULL;
    } else if (strlen(canon) > SW_CAP_MAX_INPUT) {
      if (err != NULL) errors_set(err, SW_E_BAD_REQUEST, "Invalid capability: intersection is too large");
      cap_free(c);
      c = NULL;
    }
    free(canon);
  } else if (err != NULL) {
    errors_set(err, SW_E_INTERNAL, "Out of memory intersecting capabilities");
  }
  acc_free(&a);
  return c;
}

char *cap_canonical(const sw_cap_t *c) {
  if (c == NULL) return NULL;
  /* jansson keeps insertion order, so inserting in sorted order sorts. */
  json_t *root = json_object();
  if (root == NULL) return NULL;
  for (size_t i = 0; i < c->n; i++) {
    const cap_res_t *r = &c->res[i];
    json_t *arr = json_array();
    if (arr == NULL || json_object_setn_new(root, r->text, r->len, arr) != 0) goto fail;
    if (r->star) {
      if (json_array_append_new(arr, json_string("*")) != 0) goto fail;
      continue;
    }
    for (int k = 0; k < SW_OP_COUNT; k++) {
      int op = op_sorted[k];
      if ((r->ops & SW_OP_BIT(op)) && json_array_append_new(arr, json_string(op_names[op])) != 0) goto fail;
    }
  }
  char *s = json_dumps(root, JSON_COMPACT);
  json_decref(root);
  return s;
fail:
  json_decref(root);
  return NULL;
}
