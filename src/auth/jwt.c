/* HMAC-SHA256 is computed with OpenSSL's low-level SHA256_Init/Update/
 * Final on copies of two precomputed states (the key's inner and outer
 * pads), which OpenSSL 3 marks deprecated in favour of EVP. Measured on the
 * benchmark token: EVP_MAC re-initialised from a keyed context costs
 * ~350 ns per token (each re-init duplicates the provider's digest
 * contexts, with a malloc and a free each), EVP_MD with the pads hashed
 * again ~390 ns, the low-level calls ~235 ns: the six SHA-256 blocks
 * themselves, through the same assembly the provider uses. That was a
 * tenth of a whole verification (docs/benchmarks.md, "Ably JWT
 * verification"). The functions remain in every OpenSSL 3 release; only
 * this file opts out of the deprecation warnings, and only for them. */
#define OPENSSL_SUPPRESS_DEPRECATED

#include "auth/jwt.h"

#include <jwt.h> /* libjwt, for minting only */
#include <limits.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/b64url.h"
#include "util/clock.h"

#define SIG_LEN 32u      /* HMAC-SHA256 */
#define SIG_CHARS 43u    /* unpadded base64url of 32 bytes */
#define CACHE_SLOTS 64u  /* power of two */
#define HDR_MEMO_SLOTS 32u /* power of two, at most 32 (hdr_memo_index) */
#define HDR_MEMO_TEXT 256u /* longest header text memoised; jsonwebtoken's is ~40 + the kid */
#define STACK_JSON 1536u /* decoded header/claims that fit here need no malloc */
/* Latest iat/exp/nbf accepted, in seconds: 9999-12-31T23:59:59Z. Bounds the
 * conversion to milliseconds and catches exp given in milliseconds. */
#define MAX_TIME_S 253402300799LL

static const char CLAIM_CHANNEL_PREFIX[] = "ably.channel.";

/* ---- HMAC-SHA256 (RFC 2104) ---- */

/* A key's HMAC states: SHA-256 after absorbing the key XOR ipad, and after
 * the key XOR opad. Anyone holding them can forge MACs, so they are wiped
 * like the key itself. */
typedef struct hmac_key {
  SHA256_CTX inner, outer;
} hmac_key_t;

static void hmac_key_init(hmac_key_t *k, const uint8_t *secret, size_t len) {
  uint8_t block[SHA256_CBLOCK] = {0};
  if (len > SHA256_CBLOCK) {
    /* Longer keys are hashed first (RFC 2104 section 2). */
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, secret, len);
    SHA256_Final(block, &c);
    OPENSSL_cleanse(&c, sizeof c);
  } else if (len) {
    memcpy(block, secret, len);
  }
  for (size_t i = 0; i < SHA256_CBLOCK; i++) block[i] ^= 0x36;
  SHA256_Init(&k->inner);
  SHA256_Update(&k->inner, block, SHA256_CBLOCK);
  for (size_t i = 0; i < SHA256_CBLOCK; i++) block[i] ^= 0x36 ^ 0x5c;
  SHA256_Init(&k->outer);
  SHA256_Update(&k->outer, block, SHA256_CBLOCK);
  OPENSSL_cleanse(block, sizeof block);
}

/* HMAC of data into mac (SIG_LEN bytes). */
static void hmac_run(const hmac_key_t *k, const char *data, size_t dlen, uint8_t *mac) {
  SHA256_CTX c = k->inner;
  SHA256_Update(&c, data, dlen);
  SHA256_Final(mac, &c);
  c = k->outer;
  SHA256_Update(&c, mac, SIG_LEN);
  SHA256_Final(mac, &c);
}

/* ---- keyed HMAC cache ---- */

typedef struct cache_slot {
  char kid[SW_JWT_KID_MAX];
  size_t kid_len;
  uint8_t *secret; /* copy, compared against the looked-up secret; NULL while empty */
  size_t secret_len;
  hmac_key_t key;  /* derived from secret */
} cache_slot_t;

/* A JOSE header that passed every header check (an object without crit,
 * typ JWT if present, alg HS256, a valid kid, no x-ably-token), by its
 * base64url text. Every token of one key from one issuer carries the same
 * header bytes, so this saves decoding, scanning and checking it: ~100 ns
 * of an ~830 ns verification (docs/benchmarks.md). Only headers of tokens
 * whose signature verified are kept; every refusal and every embedding JWT
 * takes the full path, and the key lookup and signature check always run. */
typedef struct hdr_memo {
  size_t len; /* of text; 0 while empty */
  char text[HDR_MEMO_TEXT];
  size_t kid_len;
  char kid[SW_JWT_KID_MAX];
} hdr_memo_t;

struct sw_jwt_cache {
  cache_slot_t slot[CACHE_SLOTS];
  hdr_memo_t hdr[HDR_MEMO_SLOTS];
};

/* Slot of a header text of n >= 16 bytes: its last 16 bytes, where the kid
 * is encoded (headers of one issuer differ there), and its length. A
 * collision only costs a miss. */
static size_t hdr_memo_index(const char *t, size_t n) {
  uint64_t a, b;
  memcpy(&a, t + n - 16, 8);
  memcpy(&b, t + n - 8, 8);
  uint64_t h = (a ^ (b * 0x9e3779b97f4a7c15u) ^ n) * 0xff51afd7ed558ccdu;
  return (size_t)(h >> 59) & (HDR_MEMO_SLOTS - 1);
}

static const hdr_memo_t *hdr_memo_find(const sw_jwt_cache_t *c, const char *t, size_t n) {
  if (n < 16 || n > HDR_MEMO_TEXT) return NULL;
  const hdr_memo_t *m = &c->hdr[hdr_memo_index(t, n)];
  return m->len == n && memcmp(m->text, t, n) == 0 ? m : NULL;
}

static void hdr_memo_put(sw_jwt_cache_t *c, const char *t, size_t n, const char *kid, size_t kid_len) {
  if (n < 16 || n > HDR_MEMO_TEXT) return;
  hdr_memo_t *m = &c->hdr[hdr_memo_index(t, n)];
  memcpy(m->text, t, n);
  m->len = n;
  memcpy(m->kid, kid, kid_len + 1);
  m->kid_len = kid_len;
}

sw_jwt_cache_t *jwt_cache_new(void) { return calloc(1, sizeof(sw_jwt_cache_t)); }

static void slot_reset(cache_slot_t *s) {
  if (s->secret) {
    OPENSSL_cleanse(s->secret, s->secret_len);
    free(s->secret);
  }
  OPENSSL_cleanse(s, sizeof *s);
}

void jwt_cache_free(sw_jwt_cache_t *c) {
  if (!c) return;
  for (size_t i = 0; i < CACHE_SLOTS; i++) slot_reset(&c->slot[i]);
  free(c);
}

/* FNV-1a: spreads keyNames of one app ("app.k1", "app.k2") over slots. */
static size_t slot_index(const char *kid, size_t len) {
  uint32_t h = 2166136261u;
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)kid[i]) * 16777619u;
  return h & (CACHE_SLOTS - 1);
}

/* HMAC-SHA256 of data into mac (32 bytes) through the cache. Returns 0, or
 * -1 when out of memory. */
static int hmac_cached(sw_jwt_cache_t *c, const char *kid, size_t kid_len, const uint8_t *secret,
                       size_t secret_len, const char *data, size_t dlen, uint8_t *mac) {
  cache_slot_t *s = &c->slot[slot_index(kid, kid_len)];
  bool hit = s->secret && s->kid_len == kid_len && memcmp(s->kid, kid, kid_len) == 0 &&
             s->secret_len == secret_len && CRYPTO_memcmp(s->secret, secret, secret_len) == 0;
  if (!hit) {
    slot_reset(s);
    s->secret = malloc(secret_len ? secret_len : 1);
    if (!s->secret) return -1;
    memcpy(s->secret, secret, secret_len);
    s->secret_len = secret_len;
    memcpy(s->kid, kid, kid_len);
    s->kid_len = kid_len;
    hmac_key_init(&s->key, secret, secret_len);
  }
  hmac_run(&s->key, data, dlen, mac);
  return 0;
}

static int hmac_once(const uint8_t *secret, size_t secret_len, const char *data, size_t dlen,
                     uint8_t *mac) {
  hmac_key_t k;
  hmac_key_init(&k, secret, secret_len);
  hmac_run(&k, data, dlen, mac);
  OPENSSL_cleanse(&k, sizeof k);
  return 0;
}

/* ---- helpers ---- */

void jwt_clear(sw_jwt_t *j) {
  if (!j) return;
  free(j->capability);
  free(j->client_id);
  free(j->revocation_key);
  free(j->client_type);
  free(j->workspace);
  json_decref(j->channel_claims);
  free(j->embedded_token);
  memset(j, 0, sizeof *j);
}

/* errors_set with an optional err. Always returns -1. */
static int fail(sw_error_t *err, int code, const char *msg) {
  if (err) errors_set(err, code, "%s", msg);
  return -1;
}

bool jwt_looks_like(const char *s, size_t n) {
  if (!s) return false;
  size_t dots = 0, seg = 0;
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '.') {
      if (seg == 0 || ++dots > 2) return false;
      seg = 0;
    } else if (b64url_is_char(c)) {
      seg++;
    } else {
      return false;
    }
  }
  return dots == 2;
}

/* ---- header and claims: a fast scanner with jansson behind it ----
 *
 * jansson needs ~0.9 us for a 50-byte header and ~1.8 us for typical
 * claims, three times the whole rest of a verification (docs/benchmarks.md).
 * Nearly every real token is a flat object of ASCII strings and integers,
 * so fast_scan reads exactly that subset in place, without allocating, and
 * answers "not mine" for anything else: escapes other than the simple
 * ones, \u, non-ASCII or control bytes, numbers with a fraction, exponent
 * or more than 18 digits, nested objects and arrays, duplicate or escaped
 * names, more than FAST_MAX_MEMBERS members, any syntax it does not expect.
 * Those go to json_loadb, which is the reference: for every input the
 * scanner accepts, jansson accepts it too and yields the same members
 * (fuzz/fuzz_jwt.c checks this differentially with opts.jansson_only).
 * The claim checks below read both through one accessor, so their logic
 * exists once. */

#define FAST_MAX_MEMBERS 32u

/* The member names the checks read, with their lengths from the literals. */
#define JWT_NAMES(X)                                                                         \
  X(N_ALG, "alg") X(N_TYP, "typ") X(N_KID, "kid") X(N_CRIT, "crit") X(N_TOKEN, "x-ably-token") \
  X(N_IAT, "iat") X(N_EXP, "exp") X(N_NBF, "nbf") X(N_CAPABILITY, "x-ably-capability")         \
  X(N_CLIENT_ID, "x-ably-clientId") X(N_REVOCATION_KEY, "x-ably-revocation-key")               \
  X(N_CLIENT_TYPE, "x-ably-clientType") X(N_WORKSPACE, "x-switchboard-workspace")
#define NAME_ENUM(id, str) id,
#define NAME_STR(id, str) [id] = str,
#define NAME_LEN(id, str) [id] = sizeof str - 1,
typedef enum { JWT_NAMES(NAME_ENUM) N_COUNT } name_t;
static const char *const names[N_COUNT] = {JWT_NAMES(NAME_STR)};
static const unsigned char name_len[N_COUNT] = {JWT_NAMES(NAME_LEN)};

typedef enum { JV_ABSENT, JV_STRING, JV_INTEGER, JV_REAL, JV_TRUE, JV_FALSE, JV_NULL, JV_OBJECT, JV_ARRAY } jv_kind_t;

/* One member value, whichever parser read it. */
typedef struct jv {
  jv_kind_t kind;
  const char *s;  /* JV_STRING: the text (between the quotes, for the scanner) */
  size_t len;     /* its length in bytes */
  bool escaped;   /* s still holds backslash escapes (scanner only) */
  long long i;    /* JV_INTEGER */
  double d;       /* JV_REAL */
  json_t *node;   /* the jansson value (borrowed), when jansson parsed it */
} jv_t;

typedef struct jmember {
  const char *key;
  size_t klen;
  jv_t v;
} jmember_t;

/* A decoded JSON object: either scanned members pointing into buf, or a
 * jansson object. */
typedef struct jobj {
  json_t *json; /* owned; non-NULL when jansson parsed it */
  size_t n;
  jmember_t m[FAST_MAX_MEMBERS];
  signed char known[N_COUNT]; /* index in m of each name read, -1 if absent */
  uint8_t *buf;               /* decoded text: stackbuf or malloc'd */
  uint8_t stackbuf[STACK_JSON];
} jobj_t;

static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Is c a byte a string scan must stop at: '"', '\\', a control byte or a
 * non-ASCII one? */
static inline bool stop_byte(unsigned char c) { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80; }

/* Index of the first stop byte (above) at or after i; n if none. Strings in
 * a token are short and broken up by escapes (a capability in JSON text
 * has one every few bytes), so this looks at 8 bytes at a time in a
 * 64-bit word and finds the first stop byte with one count of trailing
 * zeros, rather than stepping byte by byte. It was the largest cost of
 * the scanner. Each mask below may also flag bytes after a true stop byte
 * (a borrow carries upwards), never before one, so the lowest flagged
 * byte is always the right one. */
static size_t plain_run(const char *p, size_t i, size_t n) {
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
  for (; i + 8 <= n; i += 8) {
    uint64_t x;
    memcpy(&x, p + i, 8);
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    uint64_t stop = ((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) | x;
    stop &= high;
    if (stop) return i + (size_t)__builtin_ctzll(stop) / 8;
  }
#endif
  while (i < n && !stop_byte((unsigned char)p[i])) i++;
  return i;
}

/* Scans a flat object of the fast subset. Returns 0 with o->m/o->n, or 1
 * when jansson must decide. */
static int fast_scan(const char *p, size_t n, jobj_t *o) {
  size_t i = 0;
  o->n = 0;
  memset(o->known, -1, sizeof o->known);
#define WS() while (i < n && is_ws(p[i])) i++
  WS();
  if (i == n || p[i] != '{') return 1;
  i++;
  WS();
  if (i < n && p[i] == '}') {
    i++;
    goto end;
  }
  for (;;) {
    if (o->n == FAST_MAX_MEMBERS || i == n || p[i] != '"') return 1;
    jmember_t *m = &o->m[o->n];
    m->v = (jv_t){0};
    m->key = p + ++i;
    i = plain_run(p, i, n);
    if (i == n || p[i] != '"') return 1;
    m->klen = (size_t)(p + i - m->key);
    i++;
    for (size_t k = 0; k < o->n; k++)
      if (o->m[k].klen == m->klen && (m->klen == 0 || o->m[k].key[0] == m->key[0]) &&
          memcmp(o->m[k].key, m->key, m->klen) == 0)
        return 1;
    for (int k = 0; k < N_COUNT; k++)
      if (name_len[k] == m->klen && names[k][0] == m->key[0] && memcmp(names[k], m->key, m->klen) == 0)
        o->known[k] = (signed char)o->n;
    WS();
    if (i == n || p[i] != ':') return 1;
    i++;
    WS();
    if (i == n) return 1;
    char c0 = p[i];
    if (c0 == '"') {
      m->v.kind = JV_STRING;
      m->v.s = p + ++i;
      for (;;) {
        i = plain_run(p, i, n);
        if (i == n) return 1;
        if (p[i] == '"') break;
        if (p[i] != '\\') return 1; /* control or non-ASCII byte */
        char e = i + 1 < n ? p[i + 1] : '\0';
        if (e != '"' && e != '\\' && e != '/' && e != 'b' && e != 'f' && e != 'n' && e != 'r' && e != 't')
          return 1;
        m->v.escaped = true;
        i += 2;
      }
      m->v.len = (size_t)(p + i - m->v.s);
      i++;
    } else if (c0 == '-' || (c0 >= '0' && c0 <= '9')) {
      bool neg = c0 == '-';
      if (neg) i++;
      size_t d0 = i;
      long long v = 0;
      /* Only up to 18 digits are accumulated: more go to jansson anyway. */
      for (; i < n && p[i] >= '0' && p[i] <= '9'; i++)
        if (i - d0 < 18) v = v * 10 + (p[i] - '0');
      size_t digits = i - d0;
      if (digits == 0 || digits > 18 || (digits > 1 && p[d0] == '0')) return 1;
      if (i < n && (p[i] == '.' || p[i] == 'e' || p[i] == 'E')) return 1;
      m->v.kind = JV_INTEGER;
      m->v.i = neg ? -v : v;
    } else if (n - i >= 4 && memcmp(p + i, "true", 4) == 0) {
      m->v.kind = JV_TRUE;
      i += 4;
    } else if (n - i >= 5 && memcmp(p + i, "false", 5) == 0) {
      m->v.kind = JV_FALSE;
      i += 5;
    } else if (n - i >= 4 && memcmp(p + i, "null", 4) == 0) {
      m->v.kind = JV_NULL;
      i += 4;
    } else {
      return 1;
    }
    o->n++;
    WS();
    if (i == n) return 1;
    if (p[i] == '}') {
      i++;
      break;
    }
    if (p[i] != ',') return 1;
    i++;
    WS();
  }
end:
  WS();
#undef WS
  return i == n ? 0 : 1;
}

static void jobj_free(jobj_t *o) {
  json_decref(o->json);
  o->json = NULL;
  if (o->buf && o->buf != o->stackbuf) free(o->buf);
  o->buf = NULL;
}

/* Decodes a base64url segment into a JSON object. Returns 0, 1 when the
 * segment is not base64url or not a JSON object, -1 when out of memory.
 * jobj_free it in every case. */
static int jobj_load(jobj_t *o, const char *seg, size_t len, bool jansson_only) {
  o->json = NULL;
  o->n = 0;
  memset(o->known, -1, sizeof o->known); /* reads as empty whatever happens below */
  size_t cap = b64url_decoded_len(len);
  o->buf = cap <= sizeof o->stackbuf ? o->stackbuf : malloc(cap);
  if (!o->buf) return -1;
  long got = b64url_decode(seg, len, o->buf, cap);
  if (got < 0) return 1;
  if (!jansson_only && fast_scan((const char *)o->buf, (size_t)got, o) == 0) return 0;
  o->n = 0;
  json_error_t jerr;
  /* Duplicate names are refused: two "alg" or two "exp" could be read
   * differently by another parser on the way. */
  o->json = json_loadb((const char *)o->buf, (size_t)got, JSON_REJECT_DUPLICATES, &jerr);
  return json_is_object(o->json) ? 0 : 1;
}

static jv_t jv_of_node(json_t *v) {
  jv_t r;
  memset(&r, 0, sizeof r);
  r.node = v;
  switch (json_typeof(v)) {
  case JSON_STRING:
    r.kind = JV_STRING;
    r.s = json_string_value(v);
    r.len = json_string_length(v);
    break;
  case JSON_INTEGER: r.kind = JV_INTEGER; r.i = json_integer_value(v); break;
  case JSON_REAL: r.kind = JV_REAL; r.d = json_real_value(v); break;
  case JSON_TRUE: r.kind = JV_TRUE; break;
  case JSON_FALSE: r.kind = JV_FALSE; break;
  case JSON_NULL: r.kind = JV_NULL; break;
  case JSON_OBJECT: r.kind = JV_OBJECT; break;
  default: r.kind = JV_ARRAY; break;
  }
  return r;
}

static jv_t jobj_get(const jobj_t *o, name_t name) {
  jv_t none;
  memset(&none, 0, sizeof none);
  if (o->json) {
    json_t *v = json_object_get(o->json, names[name]);
    return v ? jv_of_node(v) : none;
  }
  return o->known[name] >= 0 ? o->m[o->known[name]].v : none;
}

/* The text of a JV_STRING with escapes resolved, into dst (cap bytes,
 * NUL-terminated). Returns its length, or -1 if it does not fit or holds a
 * NUL. */
static long jv_copy(const jv_t *v, char *dst, size_t cap) {
  if (!v->escaped) {
    /* The common case: one copy. Scanned text holds no NUL (the scanner
     * stops at control bytes); jansson's may. */
    if (v->len >= cap || (v->node && memchr(v->s, '\0', v->len))) return -1;
    memcpy(dst, v->s, v->len);
    dst[v->len] = '\0';
    return (long)v->len;
  }
  if (cap == 0) return -1;
  size_t w = 0;
  for (size_t i = 0; i < v->len; i++) {
    char c = v->s[i];
    if (c == '\\') {
      c = v->s[++i];
      c = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' : c == 'r' ? '\r' : c == 't' ? '\t' : c;
    }
    if (w + 1 >= cap) return -1;
    dst[w++] = c; /* never a NUL: only the scanner's simple escapes come here */
  }
  dst[w] = '\0';
  return (long)w;
}

/* A JV_STRING as a new C string; NULL when out of memory or holding a NUL. */
static char *jv_strdup(const jv_t *v) {
  char *s = malloc(v->len + 1);
  if (s && jv_copy(v, s, v->len + 1) < 0) {
    free(s);
    s = NULL;
  }
  return s;
}

/* Does the JV_STRING v spell lit (case-insensitively if icase)? */
static bool jv_is(const jv_t *v, const char *lit, bool icase) {
  size_t n = strlen(lit);
  if (v->kind != JV_STRING) return false;
  if (!v->escaped) /* compared in place; lit has no NUL, so a match has none either */
    return v->len == n && (icase ? strncasecmp(v->s, lit, n) : memcmp(v->s, lit, n)) == 0;
  char buf[16];
  if (n >= sizeof buf || jv_copy(v, buf, sizeof buf) != (long)n) return false;
  return icase ? strcasecmp(buf, lit) == 0 : strcmp(buf, lit) == 0;
}

/* A jansson value for v: a new reference. */
static json_t *jv_json(const jv_t *v) {
  if (v->node) return json_incref(v->node);
  switch (v->kind) {
  case JV_STRING: {
    char *s = jv_strdup(v);
    json_t *j = s ? json_string(s) : NULL;
    free(s);
    return j;
  }
  case JV_INTEGER: return json_integer(v->i);
  case JV_TRUE: return json_true();
  case JV_FALSE: return json_false();
  default: return json_null();
  }
}

/* ---- claims ---- */

/* A NumericDate claim (RFC 7519 section 2) in milliseconds. Returns 0 with
 * *ms, 1 when absent, -1 when not a number in [0, MAX_TIME_S]. */
static int claim_time(const jobj_t *claims, name_t name, int64_t *ms) {
  jv_t v = jobj_get(claims, name);
  if (v.kind == JV_ABSENT) return 1;
  if (v.kind == JV_INTEGER) {
    if (v.i < 0 || v.i > MAX_TIME_S) return -1;
    *ms = (int64_t)v.i * 1000;
    return 0;
  }
  if (v.kind == JV_REAL) {
    if (!isfinite(v.d) || v.d < 0 || v.d > (double)MAX_TIME_S) return -1;
    *ms = (int64_t)floor(v.d * 1000.0);
    return 0;
  }
  return -1;
}

/* An optional non-empty string claim, copied into *out. Returns 0 (absent
 * leaves *out NULL), 1 when present but not a non-empty string without
 * NUL, -1 when out of memory. */
static int claim_string(const jobj_t *obj, name_t name, char **out) {
  jv_t v = jobj_get(obj, name);
  if (v.kind == JV_ABSENT) return 0;
  if (v.kind != JV_STRING || v.len == 0 || memchr(v.s, '\0', v.len)) return 1;
  *out = jv_strdup(&v);
  return *out ? 0 : -1;
}

/* Fills the caller-visible result of an embedding JWT (x-ably-token in
 * header or claims). Nothing of the outer token is trusted except its
 * expiry, which can only shorten the inner token's life. claims is NULL
 * when they did not decode to an object. */
static int verify_embedded(const jobj_t *header, const jobj_t *claims, const sw_jwt_opts_t *o,
                           sw_jwt_t *out, sw_error_t *err) {
  if (o->forbid_embedded) return fail(err, 40144, "Invalid JWT; x-ably-token inside an embedded token");
  char *h = NULL, *c = NULL;
  int rh = claim_string(header, N_TOKEN, &h);
  int rc = claims ? claim_string(claims, N_TOKEN, &c) : 0;
  if (rh < 0 || rc < 0 || rh || rc || (h && c && strcmp(h, c) != 0)) {
    free(h);
    free(c);
    if (rh < 0 || rc < 0) return fail(err, 50000, "out of memory");
    return fail(err, 40144, rh || rc ? "Invalid JWT; x-ably-token must be a non-empty string"
                                     : "Invalid JWT; x-ably-token differs in header and claims");
  }
  out->embedded_token = h ? h : c;
  if (h && c) free(c);
  if (!claims) return fail(err, 40144, "Invalid JWT; claims are not a base64url JSON object");
  int r = claim_time(claims, N_EXP, &out->exp_ms);
  if (r) return fail(err, 40144, r > 0 ? "Invalid JWT; exp must be specified" : "Invalid JWT; exp must be a NumericDate in seconds");
  r = claim_time(claims, N_IAT, &out->iat_ms);
  if (r < 0) return fail(err, 40144, "Invalid JWT; iat must be a NumericDate in seconds");
  /* No leeway on expiry: it is judged by the server's clock (RSA4b1). */
  if (out->exp_ms <= o->now_ms) return fail(err, 40142, "Token expired");
  if (r == 0 && out->iat_ms > o->now_ms + o->leeway_ms)
    return fail(err, 40144, "Invalid JWT; issuedAt time must not be in the future");
  return 0;
}

/* Adds one "ably.channel.<resource>" claim to out->channel_claims. */
static int add_channel_claim(sw_jwt_t *out, const char *name, const jv_t *v, sw_error_t *err) {
  size_t plen = sizeof CLAIM_CHANNEL_PREFIX - 1;
  if (name[plen] == '\0') return fail(err, 40144, "Invalid JWT; ably.channel. claim without a resource");
  if (!out->channel_claims && !(out->channel_claims = json_object())) return fail(err, 50000, "out of memory");
  json_t *j = jv_json(v);
  if (!j || json_object_set_new(out->channel_claims, name + plen, j)) return fail(err, 50000, "out of memory");
  return 0;
}

/* The Ably claims of a verified token. */
static int read_claims(const jobj_t *claims, const sw_jwt_opts_t *o, sw_jwt_t *out, sw_error_t *err) {
  int r = claim_time(claims, N_IAT, &out->iat_ms);
  if (r) return fail(err, 40144, r > 0 ? "Invalid JWT; iat must be specified" : "Invalid JWT; iat must be a NumericDate in seconds");
  r = claim_time(claims, N_EXP, &out->exp_ms);
  if (r) return fail(err, 40144, r > 0 ? "Invalid JWT; exp must be specified" : "Invalid JWT; exp must be a NumericDate in seconds");
  int64_t nbf_ms = 0;
  r = claim_time(claims, N_NBF, &nbf_ms);
  if (r < 0) return fail(err, 40144, "Invalid JWT; nbf must be a NumericDate in seconds");
  bool has_nbf = r == 0;

  /* No leeway on expiry: it is judged by the server's clock (RSA4b1). */
  if (out->exp_ms <= o->now_ms) return fail(err, 40142, "Token expired");
  if (out->iat_ms > o->now_ms + o->leeway_ms)
    return fail(err, 40144, "Invalid JWT; issuedAt time must not be in the future");
  if (has_nbf && nbf_ms > o->now_ms + o->leeway_ms) return fail(err, 40144, "Invalid JWT; token not yet valid (nbf)");
  if (out->exp_ms <= out->iat_ms) return fail(err, 40144, "Invalid JWT; exp must be later than iat");
  if (out->exp_ms - out->iat_ms > o->max_ttl_ms) {
    if (err) errors_set(err, 40003, "Invalid JWT; ttl (exp - iat) exceeds %lld ms", (long long)o->max_ttl_ms);
    return -1;
  }

  /* x-ably-capability: JSON text as the docs show, or the object itself as
   * some issuers (e.g. the Ably CLI) write it. Objects only ever come from
   * jansson, as the scanner leaves nested values to it. */
  jv_t cap = jobj_get(claims, N_CAPABILITY);
  if (cap.kind == JV_OBJECT) {
    out->capability = json_dumps(cap.node, JSON_COMPACT);
    if (!out->capability) return fail(err, 50000, "out of memory");
  } else {
    r = claim_string(claims, N_CAPABILITY, &out->capability);
    if (r < 0) return fail(err, 50000, "out of memory");
    if (r) return fail(err, 40144, "Invalid JWT; x-ably-capability must be a non-empty JSON string");
  }
  static const struct {
    name_t name;
    size_t off;
  } strs[] = {{N_CLIENT_ID, offsetof(sw_jwt_t, client_id)},
              {N_REVOCATION_KEY, offsetof(sw_jwt_t, revocation_key)},
              {N_CLIENT_TYPE, offsetof(sw_jwt_t, client_type)},
              {N_WORKSPACE, offsetof(sw_jwt_t, workspace)}};
  for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
    r = claim_string(claims, strs[i].name, (char **)((char *)out + strs[i].off));
    if (r < 0) return fail(err, 50000, "out of memory");
    if (r) {
      if (err) errors_set(err, 40144, "Invalid JWT; %s must be a non-empty string", names[strs[i].name]);
      return -1;
    }
  }

  /* ably.channel.<resource>: trusted per-channel user claims. The value is
   * kept as given (the docs use JSON text in a string). */
  size_t plen = sizeof CLAIM_CHANNEL_PREFIX - 1;
  if (claims->json) {
    const char *name;
    json_t *v;
    json_object_foreach(claims->json, name, v) {
      if (strncmp(name, CLAIM_CHANNEL_PREFIX, plen) != 0) continue;
      jv_t jv = jv_of_node(v);
      if (add_channel_claim(out, name, &jv, err)) return -1;
    }
  } else {
    for (size_t k = 0; k < claims->n; k++) {
      const jmember_t *m = &claims->m[k];
      if (m->klen < plen || memcmp(m->key, CLAIM_CHANNEL_PREFIX, plen) != 0) continue;
      char name[256];
      if (m->klen >= sizeof name) {
        char *big = strndup(m->key, m->klen);
        int rr = big ? add_channel_claim(out, big, &m->v, err) : fail(err, 50000, "out of memory");
        free(big);
        if (rr) return -1;
        continue;
      }
      memcpy(name, m->key, m->klen);
      name[m->klen] = '\0';
      if (add_channel_claim(out, name, &m->v, err)) return -1;
    }
  }
  return 0;
}

/* ---- verification ---- */

/* Reads and checks the JOSE header (docs/jwt.md, "Checks, in order",
 * steps 3-4 up to the key lookup). Returns 0 with out->kid and *kid_len
 * for an ordinary signed JWT. Otherwise returns -1 and the verification is
 * over, with its result in *ret: an embedding JWT (verify_embedded), or a
 * refusal with err filled. claims is loaded only when the header alone
 * cannot tell (x-ably-token, or no kid). */
static int read_header(const char *tok, size_t hlen, const char *claims_seg, size_t plen,
                       const sw_jwt_opts_t *o, jobj_t *header, jobj_t *claims, sw_jwt_t *out,
                       long *kid_len, int *ret, sw_error_t *err) {
  int r = jobj_load(header, tok, hlen, o->jansson_only);
  if (r) {
    fail(err, r < 0 ? 50000 : 40144, r < 0 ? "out of memory" : "Invalid JWT; header is not a base64url JSON object");
    return -1;
  }

  if (jobj_get(header, N_TOKEN).kind != JV_ABSENT) {
    /* The outer token's claims are needed only for its exp. */
    r = jobj_load(claims, claims_seg, plen, o->jansson_only);
    if (r < 0) {
      fail(err, 50000, "out of memory");
      return -1;
    }
    *ret = verify_embedded(header, r == 0 ? claims : NULL, o, out, err);
    return -1;
  }

  jv_t kid = jobj_get(header, N_KID);
  if (kid.kind == JV_ABSENT) {
    /* Without a kid this can only be an embedding JWT with the token as a
     * claim; the claims are decoded only to look for it. */
    r = jobj_load(claims, claims_seg, plen, o->jansson_only);
    if (r < 0) {
      fail(err, 50000, "out of memory");
      return -1;
    }
    if (r == 0 && jobj_get(claims, N_TOKEN).kind != JV_ABSENT) {
      *ret = verify_embedded(header, claims, o, out, err);
      return -1;
    }
  }

  /* RFC 7515 4.1.11: unknown critical extensions must be refused, and we
   * understand none. */
  if (jobj_get(header, N_CRIT).kind != JV_ABSENT) {
    fail(err, 40144, "Invalid JWT; crit header is not supported");
    return -1;
  }
  jv_t typ = jobj_get(header, N_TYP);
  if (typ.kind != JV_ABSENT && !jv_is(&typ, "JWT", true)) {
    fail(err, 40144, "Invalid JWT; typ must be JWT");
    return -1;
  }
  /* The algorithm is an allow-list of one: anything the header says other
   * than exactly HS256 is refused before any key is touched. */
  jv_t alg = jobj_get(header, N_ALG);
  if (!jv_is(&alg, "HS256", false)) {
    fail(err, 40144, "Invalid JWT; unsupported alg (only HS256 is accepted)");
    return -1;
  }
  if (kid.kind == JV_ABSENT) {
    fail(err, 40144, "Invalid JWT; kid (the Ably key name) must be specified");
    return -1;
  }
  *kid_len = kid.kind == JV_STRING ? jv_copy(&kid, out->kid, sizeof out->kid) : -1;
  if (*kid_len <= 0) {
    fail(err, 40144, "Invalid JWT; kid must be a key name (appId.keyId)");
    return -1;
  }
  return 0;
}

int jwt_verify(const char *tok, size_t n, sw_jwt_key_lookup lookup, void *ud,
               const sw_jwt_opts_t *opts, sw_jwt_t *out, sw_error_t *err) {
  memset(out, 0, sizeof *out);
  sw_jwt_opts_t o = opts ? *opts : (sw_jwt_opts_t){0};
  if (o.now_ms == 0) o.now_ms = clock_now_ms();
  if (o.leeway_ms < 0) o.leeway_ms = 0;
  if (o.max_len == 0) o.max_len = SW_JWT_DEFAULT_MAX_LEN;
  if (o.max_ttl_ms <= 0) o.max_ttl_ms = SW_JWT_DEFAULT_MAX_TTL_MS;

  /* Everything before the signature check runs on unauthenticated input,
   * so it is bounded first and kept to the header. */
  if (!tok || n == 0) return fail(err, 40144, "Invalid JWT; empty token");
  if (n > o.max_len) {
    if (err) errors_set(err, 40144, "Invalid JWT; longer than %zu bytes", o.max_len);
    return -1;
  }
  const char *d1 = memchr(tok, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - tok)) : NULL;
  if (!d2) return fail(err, 40144, "Invalid JWT; expected header.claims.signature");
  if (memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - tok)))
    return fail(err, 40144, "Invalid JWT; too many segments (encrypted JWTs are not supported)");
  size_t hlen = (size_t)(d1 - tok), plen = (size_t)(d2 - d1 - 1), slen = n - (size_t)(d2 + 1 - tok);
  if (hlen == 0 || plen == 0) return fail(err, 40144, "Invalid JWT; empty header or claims");

  jobj_t header, claims;
  header.buf = claims.buf = NULL;
  header.json = claims.json = NULL;
  int ret = -1, r;
  long kid_len = 0;
  /* A header text this cache has seen in a verified token passed
   * read_header's checks and named this kid; they depend on the text
   * alone. jansson_only (testing) always reads the header. */
  bool memo = o.cache && !o.jansson_only;
  const hdr_memo_t *hm = memo ? hdr_memo_find(o.cache, tok, hlen) : NULL;
  if (hm) {
    memcpy(out->kid, hm->kid, hm->kid_len + 1);
    kid_len = (long)hm->kid_len;
    /* Reads as the empty object: the memoised header had no x-ably-token,
     * the only member read after this point. */
    memset(header.known, -1, sizeof header.known);
    header.n = 0;
  } else if (read_header(tok, hlen, d1 + 1, plen, &o, &header, &claims, out, &kid_len, &ret, err)) {
    goto done;
  }

  const uint8_t *secret = NULL;
  size_t secret_len = 0;
  if (!lookup || lookup(ud, out->kid, (size_t)kid_len, &secret, &secret_len) != 0 || !secret) {
    /* kid is a public key name, safe to echo; it has no NUL and < 128 bytes. */
    if (err) errors_set(err, 40400, "No key %s found (app or key does not exist)", out->kid);
    goto done;
  }

  uint8_t sig[SIG_LEN], mac[SIG_LEN];
  if (slen != SIG_CHARS || b64url_decode(d2 + 1, slen, sig, sizeof sig) != (long)SIG_LEN) {
    fail(err, 40144, "Invalid JWT; signature verification failed");
    goto done;
  }
  size_t signed_len = (size_t)(d2 - tok);
  r = o.cache ? hmac_cached(o.cache, out->kid, (size_t)kid_len, secret, secret_len, tok, signed_len, mac)
              : hmac_once(secret, secret_len, tok, signed_len, mac);
  if (r) {
    fail(err, 50000, "HMAC failed");
    goto done;
  }
  bool good = CRYPTO_memcmp(mac, sig, SIG_LEN) == 0;
  OPENSSL_cleanse(mac, sizeof mac);
  if (!good) {
    fail(err, 40144, "Invalid JWT; signature verification failed");
    goto done;
  }
  /* Remembered only once signed by one of our keys, so that unauthenticated
   * requests cannot churn the memo. */
  if (memo && !hm) hdr_memo_put(o.cache, tok, hlen, out->kid, (size_t)kid_len);

  /* kid was present, so the claims have not been loaded yet. */
  r = jobj_load(&claims, d1 + 1, plen, o.jansson_only);
  if (r) {
    fail(err, r < 0 ? 50000 : 40144, r < 0 ? "out of memory" : "Invalid JWT; claims are not a base64url JSON object");
    goto done;
  }
  if (jobj_get(&claims, N_TOKEN).kind != JV_ABSENT) {
    /* Signed by one of our keys and still carrying a token: the inner token
     * is what grants access, as for any embedding JWT. */
    memset(out->kid, 0, sizeof out->kid);
    ret = verify_embedded(&header, &claims, &o, out, err);
    goto done;
  }
  ret = read_claims(&claims, &o, out, err) == 0 ? 0 : -1;

done:
  jobj_free(&header);
  jobj_free(&claims);
  if (ret != 0) jwt_clear(out);
  return ret;
}

/* ---- minting ---- */

char *jwt_sign_ably(const char *key_name, const uint8_t *secret, size_t secret_len, int64_t iat_s,
                    int64_t exp_s, const char *capability, const char *client_id,
                    const char *revocation_key) {
  return jwt_sign_ably_ws(key_name, secret, secret_len, iat_s, exp_s, capability, client_id, revocation_key, NULL);
}

char *jwt_sign_ably_ws(const char *key_name, const uint8_t *secret, size_t secret_len, int64_t iat_s,
                       int64_t exp_s, const char *capability, const char *client_id,
                       const char *revocation_key, const char *workspace) {
  if (!key_name || !secret || secret_len == 0 || secret_len > INT_MAX) return NULL;
  jwt_t *j = NULL;
  char *tok = NULL;
  if (jwt_new(&j)) return NULL;
  if (jwt_set_alg(j, JWT_ALG_HS256, secret, (int)secret_len) || jwt_add_header(j, "kid", key_name) ||
      jwt_add_grant_int(j, "iat", (long)iat_s) || jwt_add_grant_int(j, "exp", (long)exp_s) ||
      (capability && jwt_add_grant(j, "x-ably-capability", capability)) ||
      (client_id && jwt_add_grant(j, "x-ably-clientId", client_id)) ||
      (revocation_key && jwt_add_grant(j, "x-ably-revocation-key", revocation_key)) ||
      (workspace && jwt_add_grant(j, "x-switchboard-workspace", workspace)))
    goto done;
  tok = jwt_encode_str(j);
done:
  jwt_free(j);
  return tok;
}
