/* ai_turns.h: who owns which AI turn, for the namespace rule
 * "cancelByTurnOwnerOnly" (docs/ai-transport.md).
 *
 * @ably/ai-transport cancels a run by publishing an `ai-cancel` message whose
 * transport headers (extras.ai.transport) name the run (`run-id`) or the
 * input that started it (`input-codec-message-id`). Ably delivers it to the
 * agent whoever sent it; under this rule switchboard first checks that the
 * sender owns the turn: the run's `run-client-id` (from its `ai-run-start`)
 * or the clientId that published the input (`ai-input`, `codec-message-id`).
 * Turns seen recently are remembered per channel; an unknown turn is looked
 * up in recent history, and refused if still unknown (fail closed). */
#ifndef SW_CORE_AI_TURNS_H
#define SW_CORE_AI_TURNS_H

#include "util/hash.h"

#include "core/principal.h"
#include "proto/pmsg.h"

typedef struct sw_channel sw_channel_t;

#define SW_AI_TURNS_MAX 1024   /* per channel, oldest forgotten first */
#define SW_AI_TURNS_SCAN 1000  /* history messages searched for an unknown turn */

typedef struct sw_turn {
  char *key;       /* "r:" run-id or "i:" input codec-message-id */
  char *owner;     /* clientId */
  UT_hash_handle hh;
} sw_turn_t;

/* Remembers the turn a published message starts or carries. */
void ai_turns_observe(sw_channel_t *ch, const sw_msg_t *m);
/* Under the rule, may the publisher of m (an `ai-cancel`) cancel its
 * target? Publishers allowed to update anyone's messages (message-update-any)
 * may cancel any turn. 0, or -1 with err 40160. */
int ai_turns_check_cancel(sw_channel_t *ch, const sw_principal_t *p, const sw_msg_t *m, sw_error_t *err);
void ai_turns_free(sw_channel_t *ch);

#endif
