/* channel_name.h: validation of channel names as clients send them (ATTACH,
 * REST paths), error 40010 "invalid channel name".
 *
 * Form accepted:
 *   name   = [ "[" prefix "]" ] plain
 *   prefix = qualifier [ "?" params ] / "?" params
 *   qualifier = "meta" / "filter=" 1*base64char
 *   params = param *( "&" param ),  param = key "=" value
 *   key    = 1*( ALPHA / DIGIT / "_" / "-" / "." ),  value = *( any but "&" )
 *   plain  = non-empty, not starting with "[" or ":"
 * "[meta]" names metachannels, "[?rewind=1]ch" carries channel params in the
 * name, "[filter=<base64>]ch" is a derived channel (ably-js getDerived, RTS5);
 * "[filter=<b64>?rewind=1]ch" combines them.
 *
 * Rules and where they come from:
 *   - not empty; not starting with "[" (unless a valid prefix) or ":"; no
 *     newline: Ably docs "Channels" (naming restrictions); 40010's summary in
 *     errors.json ("empty, ... characters that are not permitted, or used an
 *     unknown square-bracketed prefix").
 *   - valid UTF-8 (channel names are unicode strings, RTN16g1).
 *   - no control characters at all (U+0000-U+001F, U+007F): our decision,
 *     widening the documented newline rule so names are safe in logs.
 *   - at most SW_CHANNEL_NAME_MAX bytes in total: our decision. Ably sets no
 *     limit but recommends names under 2048 characters; 2048 characters of
 *     at most 4 UTF-8 bytes each fit in 8192 bytes.
 *   - unknown qualifiers ("[queue]x", "[foo]x") are refused: clients cannot
 *     attach to queues, and no other qualifier is documented for channels. */
#ifndef SW_AUTH_CHANNEL_NAME_H
#define SW_AUTH_CHANNEL_NAME_H

#include <stddef.h>

#include "proto/errors.h"

#define SW_CHANNEL_NAME_MAX 8192u /* bytes, prefix included */

typedef enum {
  SW_CHAN_PLAIN = 0, /* no qualifier (possibly "[?params]") */
  SW_CHAN_META,      /* "[meta]" */
  SW_CHAN_FILTER,    /* "[filter=...]" derived channel */
} sw_chan_kind_t;

/* Where the parts of a validated name are, as offsets into it. */
typedef struct sw_channel_name {
  sw_chan_kind_t kind;
  size_t name_off;   /* start of the plain name; 0 when there is no prefix */
  size_t filter_off; /* base64 filter expression, when kind == FILTER */
  size_t filter_len;
  size_t params_off; /* "k=v&k2=v2" (without "?"); params_len 0 when absent */
  size_t params_len;
} sw_channel_name_t;

/* Validates name[0..len) (need not be NUL-terminated; an embedded NUL is
 * refused). On success returns 0 and, if out is not NULL, fills it. On
 * failure returns -40010 and fills err (may be NULL) with 40010/400 and a
 * message naming the problem; out is then unspecified. Pure: no allocation,
 * no I/O. */
int channel_name_validate(const char *name, size_t len, sw_channel_name_t *out, sw_error_t *err);

#endif
