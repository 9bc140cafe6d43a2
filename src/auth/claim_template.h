/* claim_template.h: templates filled from a verified token's claims, such
 * as "conversations:{sub}:*" or "{org_id}" (docs/identity.md).
 *
 * A placeholder {name} takes the value of the token's top-level claim
 * `name`, which must be a string of 1..SW_TMPL_MAX_VALUE bytes made only of
 * [A-Za-z0-9_.@|-]. Anything else (a missing claim, a number, an object, an
 * empty string, or a value with ':', '*', '[', ']', '{', space...) makes the
 * expansion fail, and the caller refuses the token: a value can therefore
 * never add a segment, a wildcard or a qualifier to a capability resource,
 * so a template can never grant more than its literal text says.
 *
 * Names may hold any character but '{' and '}' (Auth0 namespaces custom
 * claims as URLs: "{https://example.com/org}"). "{{" and "}}" are a literal
 * brace. Pure functions; nothing is cached. */
#ifndef SW_AUTH_CLAIM_TEMPLATE_H
#define SW_AUTH_CLAIM_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "proto/errors.h"

#define SW_TMPL_MAX_LEN 1024u  /* a template's text and an expansion */
#define SW_TMPL_MAX_VALUE 256u /* one claim value */
#define SW_TMPL_MAX_NAME 256u  /* one claim name */

/* Is v (n bytes) acceptable as a placeholder value? */
bool tmpl_value_ok(const char *v, size_t n);

/* Checks a template's syntax (config time): at most SW_TMPL_MAX_LEN bytes,
 * every '{' opens a placeholder with a non-empty name of at most
 * SW_TMPL_MAX_NAME bytes closed by '}', or is "{{"; a lone '}' is "}}".
 * 0, or -1 with 40000 and the reason. */
int tmpl_check(const char *tmpl, sw_error_t *err);

/* The template with every placeholder replaced by "x" (a valid value):
 * what a config check can parse, e.g. as a capability resource. malloc'd,
 * or NULL when tmpl fails tmpl_check or out of memory. */
char *tmpl_sample(const char *tmpl);

/* Does the template contain a placeholder? */
bool tmpl_has_placeholder(const char *tmpl);

/* Expands tmpl (which passed tmpl_check) with claims (a JSON object).
 * Returns a malloc'd string the caller frees, or NULL with err: 40101 (a
 * claim missing or not acceptable, or values making the result longer than
 * SW_TMPL_MAX_LEN; the message names the claim, never its value), 40000
 * (a template tmpl_check refuses), 50000. */
char *tmpl_expand(const char *tmpl, const json_t *claims, sw_error_t *err);

#endif
