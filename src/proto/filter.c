#include "proto/filter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The compiled expression: a tree of nodes in one array, children first
 * (a node's operands have smaller indices), the root last. */
typedef enum {
  N_FIELD,   /* field `s` of node a, or of the root when a < 0 */
  N_LITERAL, /* lit */
  N_CMP,     /* a op b */
  N_AND,
  N_OR,
  N_NOT,     /* !a */
} node_kind_t;

typedef enum { OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE } cmp_op_t;

typedef struct node {
  node_kind_t kind;
  cmp_op_t op;
  int a, b;
  char *s;     /* N_FIELD: the field name (NUL-terminated, may hold no NUL) */
  json_t *lit; /* N_LITERAL */
} node_t;

struct sw_filter {
  node_t nodes[SW_FILTER_MAX_NODES];
  int n;
};

typedef struct parser {
  const char *p, *end;
  sw_filter_t *f;
  int depth;
  sw_error_t *err;
} parser_t;

static int fail(parser_t *ps, const char *why) {
  if (!ps->err->code) errors_set(ps->err, SW_E_INVALID_CHANNEL, "invalid filter expression: %s", why);
  return -1;
}

static void skip_ws(parser_t *ps) {
  while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r')) ps->p++;
}

/* Consumes tok (after blanks) if it comes next. */
static bool eat(parser_t *ps, const char *tok) {
  skip_ws(ps);
  size_t n = strlen(tok);
  if ((size_t)(ps->end - ps->p) < n || memcmp(ps->p, tok, n) != 0) return false;
  ps->p += n;
  return true;
}

static int add(parser_t *ps, node_t nd) {
  if (ps->f->n == SW_FILTER_MAX_NODES) {
    json_decref(nd.lit);
    free(nd.s);
    return fail(ps, "too long");
  }
  ps->f->nodes[ps->f->n] = nd;
  return ps->f->n++;
}

static int parse_or(parser_t *ps);

/* A JSON value between delimiters, with the delimiter escaped by a
 * backslash inside (JMESPath literals and quoted identifiers): the text
 * without those escapes goes to jansson. */
static json_t *delimited_json(parser_t *ps, char delim, bool keep_delim_in_text) {
  const char *start = ps->p;
  while (ps->p < ps->end && *ps->p != delim) ps->p += (*ps->p == '\\' && ps->p + 1 < ps->end) ? 2 : 1;
  if (ps->p >= ps->end) {
    fail(ps, "unterminated literal");
    return NULL;
  }
  size_t n = (size_t)(ps->p - start);
  ps->p++; /* the closing delimiter */
  char *text = malloc(n + 3);
  if (!text) {
    errors_set(ps->err, SW_E_INTERNAL, "out of memory");
    return NULL;
  }
  size_t k = 0;
  if (keep_delim_in_text) text[k++] = delim;
  for (size_t i = 0; i < n; i++) {
    if (!keep_delim_in_text && start[i] == '\\' && i + 1 < n && start[i + 1] == delim) continue; /* \` -> ` */
    text[k++] = start[i];
  }
  if (keep_delim_in_text) text[k++] = delim;
  json_error_t jerr;
  json_t *v = json_loadb(text, k, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  free(text);
  if (!v) fail(ps, "a literal is not valid JSON");
  return v;
}

/* 'raw string': \' is a quote, \\ a backslash, anything else as it is. */
static json_t *raw_string(parser_t *ps) {
  const char *start = ps->p;
  while (ps->p < ps->end && *ps->p != '\'') ps->p += (*ps->p == '\\' && ps->p + 1 < ps->end) ? 2 : 1;
  if (ps->p >= ps->end) {
    fail(ps, "unterminated raw string");
    return NULL;
  }
  size_t n = (size_t)(ps->p - start);
  ps->p++;
  char *s = malloc(n + 1);
  if (!s) {
    errors_set(ps->err, SW_E_INTERNAL, "out of memory");
    return NULL;
  }
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (start[i] == '\\' && i + 1 < n && (start[i + 1] == '\'' || start[i + 1] == '\\')) i++;
    s[k++] = start[i];
  }
  json_t *v = json_stringn(s, k);
  free(s);
  if (!v) fail(ps, "a raw string is not valid UTF-8");
  return v;
}

/* An identifier or a "quoted identifier": the field's name, malloc'd. */
static char *field_name(parser_t *ps) {
  skip_ws(ps);
  if (ps->p < ps->end && *ps->p == '"') {
    ps->p++;
    json_t *v = delimited_json(ps, '"', true);
    if (!v) return NULL;
    char *s = NULL;
    /* A name holding NUL could never match a header: refused. */
    if (!json_is_string(v) || memchr(json_string_value(v), '\0', json_string_length(v)))
      fail(ps, "invalid quoted identifier");
    else if (!(s = strdup(json_string_value(v))))
      errors_set(ps->err, SW_E_INTERNAL, "out of memory");
    json_decref(v);
    return s;
  }
  const char *start = ps->p;
  if (ps->p < ps->end && ((*ps->p >= 'A' && *ps->p <= 'Z') || (*ps->p >= 'a' && *ps->p <= 'z') || *ps->p == '_')) {
    while (ps->p < ps->end && ((*ps->p >= 'A' && *ps->p <= 'Z') || (*ps->p >= 'a' && *ps->p <= 'z') ||
                               (*ps->p >= '0' && *ps->p <= '9') || *ps->p == '_'))
      ps->p++;
  }
  if (ps->p == start) {
    fail(ps, "expected a field, a literal or '('");
    return NULL;
  }
  char *s = strndup(start, (size_t)(ps->p - start));
  if (!s) errors_set(ps->err, SW_E_INTERNAL, "out of memory");
  return s;
}

static int enter(parser_t *ps) {
  return ++ps->depth > SW_FILTER_MAX_DEPTH ? fail(ps, "nested too deeply") : 0;
}

static int parse_primary(parser_t *ps) {
  skip_ws(ps);
  if (ps->p >= ps->end) return fail(ps, "unexpected end");
  char c = *ps->p;
  if (c == '(') {
    ps->p++;
    if (enter(ps)) return -1;
    int n = parse_or(ps);
    ps->depth--;
    if (n < 0) return -1;
    return eat(ps, ")") ? n : fail(ps, "expected ')'");
  }
  if (c == '`' || c == '\'') {
    ps->p++;
    json_t *v = c == '`' ? delimited_json(ps, '`', false) : raw_string(ps);
    return v ? add(ps, (node_t){.kind = N_LITERAL, .a = -1, .b = -1, .lit = v}) : -1;
  }
  char *s = field_name(ps);
  return s ? add(ps, (node_t){.kind = N_FIELD, .a = -1, .b = -1, .s = s}) : -1;
}

static int parse_postfix(parser_t *ps) {
  int n = parse_primary(ps);
  while (n >= 0 && eat(ps, ".")) {
    char *s = field_name(ps);
    n = s ? add(ps, (node_t){.kind = N_FIELD, .a = n, .b = -1, .s = s}) : -1;
  }
  return n;
}

static int parse_unary(parser_t *ps) {
  skip_ws(ps);
  /* "!" but not "!=" */
  if (ps->p < ps->end && *ps->p == '!' && !(ps->p + 1 < ps->end && ps->p[1] == '=')) {
    ps->p++;
    if (enter(ps)) return -1;
    int n = parse_unary(ps);
    ps->depth--;
    return n < 0 ? -1 : add(ps, (node_t){.kind = N_NOT, .a = n, .b = -1});
  }
  return parse_postfix(ps);
}

static int parse_cmp(parser_t *ps) {
  int n = parse_unary(ps);
  static const struct {
    const char *tok;
    cmp_op_t op;
  } ops[] = {{"==", OP_EQ}, {"!=", OP_NE}, {"<=", OP_LE}, {">=", OP_GE}, {"<", OP_LT}, {">", OP_GT}};
  while (n >= 0) {
    size_t i = 0;
    while (i < sizeof ops / sizeof ops[0] && !eat(ps, ops[i].tok)) i++;
    if (i == sizeof ops / sizeof ops[0]) break;
    int m = parse_unary(ps);
    n = m < 0 ? -1 : add(ps, (node_t){.kind = N_CMP, .op = ops[i].op, .a = n, .b = m});
  }
  return n;
}

static int parse_and(parser_t *ps) {
  int n = parse_cmp(ps);
  while (n >= 0 && eat(ps, "&&")) {
    int m = parse_cmp(ps);
    n = m < 0 ? -1 : add(ps, (node_t){.kind = N_AND, .a = n, .b = m});
  }
  return n;
}

static int parse_or(parser_t *ps) {
  if (enter(ps)) return -1;
  int n = parse_and(ps);
  while (n >= 0 && eat(ps, "||")) {
    int m = parse_and(ps);
    n = m < 0 ? -1 : add(ps, (node_t){.kind = N_OR, .a = n, .b = m});
  }
  ps->depth--;
  return n;
}

void filter_free(sw_filter_t *f) {
  if (!f) return;
  for (int i = 0; i < f->n; i++) {
    free(f->nodes[i].s);
    json_decref(f->nodes[i].lit);
  }
  free(f);
}

sw_filter_t *filter_compile(const char *expr, size_t len, sw_error_t *err) {
  sw_error_t local = {0};
  if (!err) err = &local;
  memset(err, 0, sizeof *err);
  if (len > SW_FILTER_MAX_LEN) {
    errors_set(err, SW_E_INVALID_CHANNEL, "invalid filter expression: longer than %d bytes", SW_FILTER_MAX_LEN);
    return NULL;
  }
  sw_filter_t *f = calloc(1, sizeof *f);
  if (!f) {
    errors_set(err, SW_E_INTERNAL, "out of memory");
    return NULL;
  }
  parser_t ps = {.p = expr, .end = expr + len, .f = f, .err = err};
  int root = parse_or(&ps);
  skip_ws(&ps);
  if (root >= 0 && ps.p != ps.end) root = fail(&ps, "unexpected text after the expression");
  /* Every combinator adds its node after its operands': the root is last. */
  if (root >= 0 && root != f->n - 1) root = fail(&ps, "internal: root not last");
  if (root < 0) {
    filter_free(f);
    return NULL;
  }
  return f; /* the root is the last node added */
}

/* ---- evaluation ---- */

typedef enum { V_NULL, V_BOOL, V_NUM, V_STR, V_JSON } vkind_t;

typedef struct val {
  vkind_t k;
  bool b;
  double d;
  const char *s;
  size_t n;
  const json_t *j; /* V_JSON: an object or array */
} val_t;

static val_t from_json(const json_t *j) {
  if (json_is_string(j)) return (val_t){.k = V_STR, .s = json_string_value(j), .n = json_string_length(j)};
  if (json_is_number(j)) return (val_t){.k = V_NUM, .d = json_number_value(j)};
  if (json_is_boolean(j)) return (val_t){.k = V_BOOL, .b = json_is_true(j)};
  if (json_is_object(j) || json_is_array(j)) return (val_t){.k = V_JSON, .j = j};
  return (val_t){.k = V_NULL};
}

static bool truthy(const val_t *v) {
  switch (v->k) {
  case V_BOOL: return v->b;
  case V_NUM: return true;
  case V_STR: return v->n > 0;
  case V_JSON: return json_is_object(v->j) ? json_object_size(v->j) > 0 : json_array_size(v->j) > 0;
  default: return false;
  }
}

static bool equal(const val_t *x, const val_t *y) {
  if (x->k != y->k) return false;
  switch (x->k) {
  case V_NULL: return true;
  case V_BOOL: return x->b == y->b;
  case V_NUM: return x->d == y->d;
  case V_STR: return x->n == y->n && memcmp(x->s, y->s, x->n) == 0;
  default: return json_equal((json_t *)x->j, (json_t *)y->j);
  }
}

typedef struct ctx {
  const char *name;
  const json_t *headers;
} ctx_t;

/* Values of every node, computed in order (operands come first); && and ||
 * evaluate both sides, which has no effect but cost here. */
bool filter_match(const sw_filter_t *f, const char *name, const json_t *headers) {
  ctx_t cx = {.name = name, .headers = json_is_object(headers) ? headers : NULL};
  val_t v[SW_FILTER_MAX_NODES];
  for (int i = 0; i < f->n; i++) {
    const node_t *nd = &f->nodes[i];
    switch (nd->kind) {
    case N_LITERAL: v[i] = from_json(nd->lit); break;
    case N_FIELD:
      if (nd->a < 0) {
        if (strcmp(nd->s, "name") == 0)
          v[i] = cx.name ? (val_t){.k = V_STR, .s = cx.name, .n = strlen(cx.name)} : (val_t){.k = V_NULL};
        else if (strcmp(nd->s, "headers") == 0)
          v[i] = cx.headers ? (val_t){.k = V_JSON, .j = cx.headers} : (val_t){.k = V_NULL};
        else
          v[i] = (val_t){.k = V_NULL};
      } else {
        const val_t *p = &v[nd->a];
        v[i] = p->k == V_JSON && json_is_object(p->j) ? from_json(json_object_get(p->j, nd->s)) : (val_t){.k = V_NULL};
      }
      break;
    case N_NOT: v[i] = (val_t){.k = V_BOOL, .b = !truthy(&v[nd->a])}; break;
    case N_AND: v[i] = truthy(&v[nd->a]) ? v[nd->b] : v[nd->a]; break;
    case N_OR: v[i] = truthy(&v[nd->a]) ? v[nd->a] : v[nd->b]; break;
    case N_CMP: {
      const val_t *x = &v[nd->a], *y = &v[nd->b];
      if (nd->op == OP_EQ || nd->op == OP_NE) {
        v[i] = (val_t){.k = V_BOOL, .b = equal(x, y) == (nd->op == OP_EQ)};
      } else if (x->k != V_NUM || y->k != V_NUM) {
        v[i] = (val_t){.k = V_NULL};
      } else {
        bool r = nd->op == OP_LT ? x->d < y->d : nd->op == OP_LE ? x->d <= y->d : nd->op == OP_GT ? x->d > y->d : x->d >= y->d;
        v[i] = (val_t){.k = V_BOOL, .b = r};
      }
      break;
    }
    }
  }
  return f->n > 0 && truthy(&v[f->n - 1]);
}
