#include "core/ai_turns.h"

#include <stdlib.h>
#include <string.h>

#include "core/channel.h"
#include "core/server.h"
#include "proto/codec.h"
#include "store/store.h"
#include "util/clock.h"

static const char *header(const sw_msg_t *m, const char *name) {
  json_t *t = json_object_get(json_object_get(m->extras, "ai"), "transport");
  return json_string_value(json_object_get(t, name));
}

static void remember(sw_channel_t *ch, const char *prefix, const char *id, const char *owner) {
  if (!id || !owner || !*id) return;
  size_t n = strlen(prefix) + strlen(id) + 1;
  char *key = malloc(n);
  if (!key) return;
  snprintf(key, n, "%s%s", prefix, id);
  sw_channel_ext_t *x = channel_ext(ch);
  if (!x) {
    free(key);
    return;
  }
  sw_turn_t *t = NULL;
  HASH_FIND_STR(x->turns, key, t);
  if (t) {
    free(key);
    return; /* the first owner stays */
  }
  if (HASH_COUNT(x->turns) >= SW_AI_TURNS_MAX) {
    sw_turn_t *old = x->turns; /* insertion order: the oldest */
    HASH_DEL(x->turns, old);
    free(old->key);
    free(old->owner);
    free(old);
  }
  t = calloc(1, sizeof *t);
  if (!t || !(t->owner = strdup(owner))) {
    free(t);
    free(key);
    return;
  }
  t->key = key;
  HASH_ADD_KEYPTR(hh, x->turns, t->key, strlen(t->key), t);
}

void ai_turns_observe(sw_channel_t *ch, const sw_msg_t *m) {
  if (!m->name || !m->extras) return;
  if (strcmp(m->name, "ai-run-start") == 0) {
    const char *owner = header(m, "run-client-id");
    remember(ch, "r:", header(m, "run-id"), owner);
    /* A run also names the input that started it. */
    remember(ch, "i:", header(m, "input-codec-message-id"), owner);
  } else if (strcmp(m->name, "ai-input") == 0) {
    remember(ch, "i:", header(m, "codec-message-id"), m->client_id);
  }
}

static const char *owner_of(sw_channel_t *ch, const char *prefix, const char *id) {
  if (!id) return NULL;
  char key[512];
  snprintf(key, sizeof key, "%s%s", prefix, id);
  sw_turn_t *t = NULL;
  HASH_FIND_STR(channel_xr(ch)->turns, key, t);
  return t ? t->owner : NULL;
}

/* Learns turns from recent durable history (after a restart, or when the
 * channel was unloaded). */
static void scan_history(sw_channel_t *ch) {
  sw_history_q_t q = {.app_id = ch->app->id, .channel = ch->name, .after_seq = -1,
                      .before_seq = ch->durable_seq + 1, .start = 0, .end = INT64_MAX,
                      .forwards = false, .limit = SW_AI_TURNS_SCAN, .now = clock_now_ms()};
  sw_store_rows_t rows = {0};
  if (store_history(ch->srv->store, &q, &rows)) return;
  /* Oldest first, so eviction keeps the newest. */
  for (size_t i = rows.n; i-- > 0;) {
    sw_msg_t m = {0};
    if (codec_msg_from_blob(rows.rows[i].blob, rows.rows[i].blob_len, &m) == 0) ai_turns_observe(ch, &m);
    msg_clear(&m);
  }
  store_rows_free(&rows);
}

int ai_turns_check_cancel(sw_channel_t *ch, const sw_principal_t *p, const sw_msg_t *m, sw_error_t *err) {
  if (cap_allows(p->cap, ch->name, SW_OP_MESSAGE_UPDATE_ANY)) return 0;
  const char *run = header(m, "run-id"), *input = header(m, "input-codec-message-id");
  if (!run && !input) return errors_set(err, SW_E_CAPABILITY_DENIED, "cancel refused: it names no turn");
  /* Every identifier the cancel carries must be the sender's own: the agent
   * routes by run-id first and falls back to (and buffers by) the input. */
  const char *ro = run ? owner_of(ch, "r:", run) : NULL, *io = input ? owner_of(ch, "i:", input) : NULL;
  if ((run && !ro) || (input && !io)) {
    scan_history(ch);
    if (run && !ro) ro = owner_of(ch, "r:", run);
    if (input && !io) io = owner_of(ch, "i:", input);
  }
  const char *me = m->client_id;
  bool ok = me && (!run || (ro && strcmp(ro, me) == 0)) && (!input || (io && strcmp(io, me) == 0));
  if (ok) return 0;
  bool unknown = (run && !ro) || (input && !io);
  return errors_set(err, SW_E_CAPABILITY_DENIED, unknown ? "cancel refused: the turn is unknown"
                                                         : "only the owner of a turn may cancel it");
}

void ai_turns_free(sw_channel_t *ch) {
  if (!ch->ext) return;
  sw_turn_t *t, *tmp;
  HASH_ITER(hh, ch->ext->turns, t, tmp) {
    HASH_DEL(ch->ext->turns, t);
    free(t->key);
    free(t->owner);
    free(t);
  }
}
