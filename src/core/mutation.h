/* mutation.h: message updates, deletes and appends (TM5 actions
 * message.update 1, message.delete 2, message.append 5; RSL15, RTL32).
 *
 * A message (its serial = the seq of its create) gets versions; each version
 * has its own serial (the next channel seq), so channelSerial continuity and
 * resume cover them like any message. The server keeps one head per message:
 * the aggregated latest state (for appends, the concatenated data, action
 * message.update). Live subscribers get each event as it comes: an update or
 * delete with the whole new head, an append with just its fragment; a client
 * that attached after the message was created gets its first append as a
 * full-contents message.update instead, so it never sees a fragment of a
 * message it does not hold. History, rewind and resume serve heads. */
#ifndef SW_CORE_MUTATION_H
#define SW_CORE_MUTATION_H

#include <stdbool.h>
#include <stdint.h>
#include "util/hash.h"

#include "core/channel.h"
#include "core/principal.h"
#include "proto/pmsg.h"
#include "store/store.h"
#include "util/buf.h"

/* TM5 message actions. */
enum {
  SW_MSG_CREATE = 0,
  SW_MSG_UPDATE = 1,
  SW_MSG_DELETE = 2,
  SW_MSG_META = 3,
  SW_MSG_SUMMARY = 4,
  SW_MSG_APPEND = 5,
};

/* A head kept in memory while it is being changed (channel->heads). */
typedef struct sw_head {
  int64_t seq;
  sw_msg_t msg;    /* the aggregated head, owned; includes versions in flight */
  unsigned pending; /* versions not yet durable: never evicted meanwhile */
  unsigned gen;     /* bumped by updates and deletes (appends only extend) */
  struct version *inflight; /* versions not yet durable, newest first */
  json_t *spare_version;    /* a version object of msg's, set again when its
                               own is shared (mutation_fold_spare); or NULL */
  UT_hash_handle hh;
} sw_head_t;

/* A serial an attachment already holds in full (sw_attach.full_sent). */
typedef struct sw_seen {
  int64_t seq;
  UT_hash_handle hh;
} sw_seen_t;

/* Applies msg (action update, delete or append, msg->serial naming the
 * target) from a caller acting as caller_client_id with principal p.
 * Checks the namespace rule (93002), the target (40400), the capability
 * (message-update-own/any, message-delete-own/any: 40160; only -own and no
 * identity: 40166). On success the version is persisted, then broadcast, and
 * the publisher told its version serial. msg is consumed either way.
 * Returns 0, or -1 with err. */
int mutation_apply(sw_channel_t *ch, const sw_principal_t *p, const char *caller_client_id, sw_msg_t *msg,
                   const sw_publisher_t *who, sw_error_t *err);

/* The bus's deliver_version (core/bus.h; ud the server): version vseq of
 * message seq, with the head after it when known, fanned out to this
 * node's subscribers as a version made here would be. */
void mutation_bus_deliver(void *ud, const char *app_id, const char *channel, int64_t vseq, int64_t seq, int64_t ts,
                          const uint8_t *event, size_t event_len, const uint8_t *head, size_t head_len);

/* On a bus with versions: queues annotation ann (stamped and checked by
 * core/annotation.c; consumed) of message seq with the channel's changes;
 * its summary is folded into the head read then. 0 or -1 with err. */
int mutation_annotate_shared(sw_channel_t *ch, sw_msg_t *ann, int64_t seq, const sw_publisher_t *who,
                             sw_error_t *err);

/* Replaces the head kept in memory of message seq by blob (len 0: forgets it). */
void mutation_head_replace(sw_channel_t *ch, int64_t seq, const uint8_t *blob, size_t len);

/* The pure part: folds request msg (action update/delete/append) into
 * head (the message's current head, modified in place) and fills event with
 * what live subscribers get. vserial is the version's serial, actor the
 * clientId recorded in the version. Consumes the parts of msg it keeps.
 * 0, or -1 with err (40013: an append of another data type). */
int mutation_fold(sw_msg_t *head, sw_msg_t *event, sw_msg_t *msg, const char *vserial, int64_t now,
                  const char *actor, sw_error_t *err);
/* mutation_fold with a spare version object kept with the head (*spare,
 * NULL at first, the caller releases it with json_decref): while an event
 * not yet durable shares the head's version object, the spare is set in
 * place instead of a new one built. */
int mutation_fold_spare(sw_msg_t *head, json_t **spare, sw_msg_t *event, sw_msg_t *msg, const char *vserial,
                        int64_t now, const char *actor, sw_error_t *err);

/* An append's fold_hint (sw_store_rec_t): where its data lies in its event
 * blob (off, len as codec_msg_to_blob_at gives them, and the data type), so
 * that a fold takes the bytes from there instead of parsing the blob
 * (parsing was a third of a fold's cost). 0 (no hint, as for events read
 * back from the log after a restart) when the numbers do not fit. */
uint64_t mutation_frag_hint(size_t off, size_t len, sw_data_kind_t kind);

/* The store's fold (sw_store_fold_fn): a stored head and the append
 * events (message.append, as mutation_apply stores them) give the head
 * with their data concatenated and the last event's extras and version,
 * action update. Pure. 0, -EINVAL (undecodable, not an append, or
 * another data type) or -ENOMEM. */
int mutation_fold_blobs(const uint8_t *head, size_t head_len, const sw_store_event_t *events, size_t n,
                        sw_buf_t *out);
/* The same fold, always by decoding and encoding: mutation_fold_blobs
 * splices the bytes instead when the blobs allow it (proto/blob_append.h)
 * and must give exactly this result (the tests compare them). */
int mutation_fold_blobs_decoded(const uint8_t *head, size_t head_len, const sw_store_event_t *events, size_t n,
                                sw_buf_t *out);

/* The head of message seq: one being changed (kept in ch->heads), else
 * read from storage and kept. NULL when the message is not stored. A head
 * with pending > 0 is never evicted. Annotations change heads through this
 * too (core/annotation.c), so updates and summaries build on each other. */
sw_head_t *mutation_head(sw_channel_t *ch, int64_t seq);
/* Forgets the kept head of message seq, if any: its state ran ahead of a
 * change that will not be stored; it is read from storage next time. */
void mutation_head_forget(sw_channel_t *ch, int64_t seq);

/* Live delivery of appends a rollup held (core/rollup.c): event is a
 * message.append carrying the fragments of the appends first_vseq to
 * last_vseq (whose version serial is `serial`), published by conn_id; gen
 * and data_len describe the head just after the last one. A subscriber that
 * does not hold the message in full, or went live after first_vseq (its
 * attach or replay gave it part of event already), gets that head as a
 * message.update instead; one that went live after last_vseq has it all
 * and gets nothing. */
void mutation_deliver_held(sw_channel_t *ch, int64_t seq, int64_t first_vseq, int64_t last_vseq, const char *serial,
                           const char *conn_id, const sw_msg_t *event, unsigned gen, size_t data_len);

/* Remembers that attachment a holds message seq in full. */
void mutation_mark_full(sw_attach_t *a, int64_t seq);
void mutation_attach_free(sw_attach_t *a);
void mutation_channel_free(sw_channel_t *ch);

#endif
