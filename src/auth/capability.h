/* capability.h: Ably capabilities (RSA9f, TK2b, TD5; docs "Capabilities").
 *
 * A capability is a JSON object mapping resources to operation lists, e.g.
 * {"channel:*":["publish"],"[*]*":["*"]}. It is parsed once into an
 * immutable sw_cap_t; matching a channel against it never allocates, so it
 * can run on every publish and every delivery.
 *
 * Resource grammar (docs/capabilities.md has the sources):
 *   resource  = [ "[" qualifier "]" ] pattern
 *   qualifier = "*" | 1*( ALPHA / DIGIT / "-" / "_" / "." )
 *   pattern   = segment *( ":" segment )  ; non-empty, not starting with "["
 * A segment that is exactly "*" matches any one segment; as the last
 * segment it matches one or more segments ("ns:*" matches "ns:a" and
 * "ns:a:b", not "ns"). "*" inside a segment ("foo*") is a literal. A
 * resource without qualifier matches only plain channels; "[meta]p" matches
 * "[meta]<name>" channels; "[*]p" matches every channel, qualified or not.
 * A channel name is matched without its "::$..." suffix (from the first
 * "::$" on): "room" grants Ably Chat's "room::$chat", and a resource that
 * itself contains "::$" therefore matches no channel.
 *
 * A channel granted by several resources gets the union of their
 * operations. Thread-safety: an sw_cap_t is immutable after construction
 * and may be read from any thread; it has a single owner who frees it. */
#ifndef SW_AUTH_CAPABILITY_H
#define SW_AUTH_CAPABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/errors.h"

/* Operations; bit i of an op mask is 1u << i. */
enum {
  SW_OP_SUBSCRIBE,
  SW_OP_PUBLISH,
  SW_OP_PRESENCE,
  SW_OP_HISTORY,
  SW_OP_OBJECT_SUBSCRIBE,
  SW_OP_OBJECT_PUBLISH,
  SW_OP_ANNOTATION_SUBSCRIBE,
  SW_OP_ANNOTATION_PUBLISH,
  SW_OP_MESSAGE_UPDATE_OWN,
  SW_OP_MESSAGE_UPDATE_ANY,
  SW_OP_MESSAGE_DELETE_OWN,
  SW_OP_MESSAGE_DELETE_ANY,
  SW_OP_STATS,
  SW_OP_CHANNEL_METADATA,
  SW_OP_PUSH_SUBSCRIBE,
  SW_OP_PUSH_ADMIN,
  SW_OP_PRIVILEGED_HEADERS,
  SW_OP_COUNT
};

/* Every operation: what "*" in an operation list grants. */
#define SW_OPS_ALL ((uint32_t)((1u << SW_OP_COUNT) - 1u))
#define SW_OP_BIT(op) ((uint32_t)1u << (op))

/* Limits checked before anything is allocated for the parsed form. */
#define SW_CAP_MAX_INPUT (64u * 1024u)   /* bytes of capability JSON */
#define SW_CAP_MAX_RESOURCES 1000u       /* resources in one capability */
#define SW_CAP_MAX_RESOURCE_LEN 8192u    /* bytes of one resource string */

typedef struct sw_cap sw_cap_t; /* opaque, immutable, one owner */

/* Parses capability JSON text of len bytes (need not be NUL-terminated).
 * Resources and operations may come in any order; duplicate operations are
 * merged. Returns a new capability owned by the caller (free with
 * cap_free), or NULL with err filled (err may be NULL): 50000 when out of
 * memory, else 40000 (status 400), as Ably answers invalid capabilities in
 * token requests; the message names the problem and the resource:
 *   input longer than SW_CAP_MAX_INPUT, malformed JSON or a duplicate key,
 *   not a JSON object, no resources, more than SW_CAP_MAX_RESOURCES,
 *   invalid resource (empty, too long, control character, bad qualifier,
 *   empty pattern or one starting with "["), operations not an array, empty
 *   operation list,
 *   non-string or unknown operation, "*" together with other operations. */
sw_cap_t *cap_parse(const char *json, size_t len, sw_error_t *err);

/* {"*":["*"]}: every operation on every plain channel, the default
 * capability of a key configured without one (TK2b). Caller frees; NULL
 * only when out of memory. */
sw_cap_t *cap_all(void);

/* {"[*]*":["*"]}: every operation on every channel including qualified
 * ones; what a token request without a capability asks for (docs "Ably
 * Token without capabilities"). Caller frees; NULL only when out of memory. */
sw_cap_t *cap_all_qualified(void);

/* Another reference to c (capabilities are immutable, so they can be
 * shared: a key's capability by its connections, a cached effective
 * capability by many tokens). Not thread-safe: one thread per capability.
 * NULL gives NULL. */
sw_cap_t *cap_ref(sw_cap_t *c);
/* Drops a reference; the last one frees c. NULL is a no-op. */
void cap_free(sw_cap_t *c);

/* Number of resources in c (0 for NULL). */
size_t cap_count(const sw_cap_t *c);

/* Operations granted on a channel: the union over all matching resources,
 * 0 when nothing matches or c/channel is NULL. channel is the name as sent
 * by the client, NUL-terminated ("conversations:user-1", "[meta]foo").
 * Channel params and filter qualifiers are ignored: "[?rewind=1]ch" and
 * "[filter=..]ch" are checked as "ch", "[meta?x=1]m" as "[meta]m" (a derived
 * channel needs the rights on its base channel). A name starting with "["
 * without a closing "]" gets 0. Never allocates. */
uint32_t cap_ops_for_channel(const sw_cap_t *c, const char *channel);

/* cap_ops_for_channel on a name given as pointer and length. */
uint32_t cap_ops_for_channel_n(const sw_cap_t *c, const char *channel, size_t len);

/* True when op (an SW_OP_* value) is granted on channel. False for an op out
 * of range. Never allocates. */
bool cap_allows(const sw_cap_t *c, const char *channel, int op);

/* Operations granted app-wide: the union over resources that cover every
 * plain channel ("*" and "[*]*"). The docs make stats, and channel
 * enumeration with channel-metadata, depend on these resources only.
 * Never allocates. */
uint32_t cap_app_ops(const sw_cap_t *c);

/* Intersection of a requested capability with the key's (token request,
 * JWT): for every pair of resources that match some channel in common the
 * result holds the resource matching exactly their common channels (the
 * narrower of the two when one contains the other, e.g. "cansubscribe" from
 * "cansubscribe" and "*") with the intersection of their operations ("*"
 * stands for all of them); pairs with no common operation are dropped.
 * For every channel, cap_ops_for_channel(result) equals the AND of both.
 * Returns a new capability owned by the caller, or NULL with err (may be
 * NULL): 40160 (status 401) when nothing is left; 40000 when the result
 * would exceed the parse limits (so every result can be parsed again);
 * 50000 when out of memory. A NULL operand counts as empty (40160). */
sw_cap_t *cap_intersect(const sw_cap_t *requested, const sw_cap_t *key, sw_error_t *err);

/* Canonical text (token-request-spec "Parameter canonicalisation"): compact
 * JSON, resources in byte-wise lexicographic order, operations likewise,
 * ["*"] for a wildcard list. cap_parse(cap_canonical(c)) gives back the same
 * canonical text. Returns a malloc'd NUL-terminated string the caller frees
 * with free(), or NULL for a NULL c or when out of memory. */
char *cap_canonical(const sw_cap_t *c);

/* Channel modes (TR3 SW_MODE_* in proto/pmsg.h) that an op mask allows:
 *   subscribe        -> SUBSCRIBE, PRESENCE_SUBSCRIBE, OBJECT_SUBSCRIBE
 *   publish          -> PUBLISH
 *   presence         -> PRESENCE
 *   object-subscribe -> OBJECT_SUBSCRIBE     object-publish -> OBJECT_PUBLISH
 *   annotation-subscribe -> ANNOTATION_SUBSCRIBE
 *   annotation-publish   -> ANNOTATION_PUBLISH
 * ATTACHED flags are then requested & cap_modes_for_ops(ops). */
uint32_t cap_modes_for_ops(uint32_t ops);

/* Name of an operation ("publish"), or NULL when op is out of range. The
 * string is static. */
const char *cap_op_name(int op);

/* SW_OP_* value of an operation name of len bytes, or -1 if unknown. "*" is
 * not an operation here. */
int cap_op_from_name(const char *name, size_t len);

#endif
