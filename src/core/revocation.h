/* revocation.h: token revocation rules (RSA17, revokeTokens).
 *
 * A rule revokes the revocable tokens of one key that match a target
 * (clientId, revocationKey or channel) and were issued before issued_before,
 * from applies_at on. Rules are kept in memory and persisted (kv namespace
 * "revocations") so revoked tokens stay refused after a restart; a rule is
 * dropped once every token it could match has expired (24 h). */
#ifndef SW_CORE_REVOCATION_H
#define SW_CORE_REVOCATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { SW_REVOKE_CLIENT_ID = 1, SW_REVOKE_REVOCATION_KEY, SW_REVOKE_CHANNEL } sw_revoke_type_t;

typedef struct sw_revocation {
  char *key_name;
  sw_revoke_type_t type;
  char *value;
  int64_t issued_before;
  int64_t applies_at;
} sw_revocation_t;

typedef struct sw_revocations {
  sw_revocation_t *rules;
  size_t n, cap;
} sw_revocations_t;

/* The longest target value kept (a clientId, revocationKey or channel
 * name): rules live for a day, so their size is bounded. */
#define SW_REVOCATION_VALUE_MAX 2048

/* Adds a rule (copies strings) at time now_ms. A rule that an existing rule
 * for the same key and target already covers (issued_before no later,
 * in force no later) adds nothing; one that covers an existing rule
 * replaces it. Rules are only ever checked at now or later, so every
 * applies_at before now_ms counts as now: repeating a revocation does not
 * grow the list. 0, -ENOSPC when max rules are kept already, -EINVAL for a
 * value longer than SW_REVOCATION_VALUE_MAX, or -ENOMEM. */
int revocations_add(sw_revocations_t *r, size_t max, int64_t now_ms, const char *key_name, sw_revoke_type_t type,
                    const char *value, int64_t issued_before, int64_t applies_at);
/* Parses "clientId:x" / "revocationKey:x" / "channel:x". 0 or -1. */
int revocation_parse_target(const char *target, sw_revoke_type_t *type, const char **value);
/* Drops rules older than max_age_ms past their issued_before. */
void revocations_expire(sw_revocations_t *r, int64_t now_ms, int64_t max_age_ms);
/* Serialises every rule as JSON text (malloc'd), and loads it back (every
 * rule, even beyond the current limit: they were accepted once). */
char *revocations_dump(const sw_revocations_t *r);
int revocations_load(sw_revocations_t *r, const char *json);
void revocations_free(sw_revocations_t *r);

#endif
