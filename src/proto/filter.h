/* filter.h: subscription filter expressions of derived channels
 * ("[filter=<base64 expression>]channel", ably-js channels.getDerived,
 * RTS5). Pure: no I/O; compiling allocates the filter, matching nothing.
 *
 * Ably writes filters in JMESPath over a message's `name` and
 * `extras.headers` (a flat object of strings, numbers and booleans). The
 * subset understood here is what such filters need:
 *
 *   expr    = or
 *   or      = and *( "||" and )
 *   and     = cmp *( "&&" cmp )
 *   cmp     = unary *( ("==" / "!=" / "<" / "<=" / ">" / ">=") unary )
 *   unary   = "!" unary / postfix
 *   postfix = primary *( "." field )
 *   primary = field / "`" json "`" / "'" raw string "'" / "(" expr ")"
 *   field   = identifier ([A-Za-z_][A-Za-z0-9_]*) / quoted identifier ("...")
 *
 * with JMESPath's semantics: the root holds `name` and `headers`, any other
 * field (or a field of something that is not an object) is null; == and !=
 * compare JSON values; <, <=, >, >= compare numbers (otherwise null);
 * && and || return one of their operands, ! a boolean; false, null, "", []
 * and {} are false. A message passes when the expression is true in that
 * sense. Other JMESPath forms (functions, projections, pipes, indexes)
 * are refused. */
#ifndef SW_PROTO_FILTER_H
#define SW_PROTO_FILTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/errors.h"

/* Bounds checked before anything is allocated for them. */
#define SW_FILTER_MAX_LEN 1024  /* bytes of expression */
#define SW_FILTER_MAX_DEPTH 32  /* nesting of parentheses and operators */
#define SW_FILTER_MAX_NODES 256 /* fields, literals and operators */

typedef struct sw_filter sw_filter_t;

/* Compiles expr[0..len). NULL with err set (40010, as the filter is part of
 * the channel name) when it is malformed, outside the subset, or over the
 * bounds; 50000 when out of memory. */
sw_filter_t *filter_compile(const char *expr, size_t len, sw_error_t *err);
/* Whether a message with this name (may be NULL) and extras.headers (may
 * be NULL; anything but an object counts as absent) passes. */
bool filter_match(const sw_filter_t *f, const char *name, const json_t *headers);
void filter_free(sw_filter_t *f);

#endif
