/* annotation.h: message annotations (RTAN, RSAN, TAN) and the summaries the
 * server keeps from them (TM2u, TM7, TM8; docs "Message annotations").
 *
 * An annotation names a message by its serial and has a type
 * "namespace:method.v1" whose method says how it is summarised:
 *   total.v1     {"total": n}: every create counts, every delete uncounts;
 *   flag.v1      {"total", "clientIds", "clipped"}: each client once;
 *   distinct.v1  {name: {"total", "clientIds", "clipped"}}: each client once per name;
 *   unique.v1    the same, a client in one name at a time (a new name moves it);
 *   multiple.v1  {name: {"total", "clientIds": {clientId: count}, "totalUnidentified",
 *                "clipped", "totalClientIds"}}: counts add up per client;
 * other methods are stored and delivered, not summarised. flag, distinct
 * and unique need an identified client (40161); distinct, unique and
 * multiple a name (40003). A delete removes the client's contribution
 * (total.v1: one count). A name or type left with nothing is dropped.
 *
 * The summary of a message lives in its head (message.annotations.summary),
 * so history, rewind and GET of a message serve it as Ably does. An
 * annotation is stored with its message (store: SW_STORE_ANNOTATION) in the
 * same submission as the head it changed, and only when that is durable is
 * it delivered: the annotation to ANNOTATION_SUBSCRIBE attachments, and a
 * MESSAGE with action message.summary (the message's serial and its new
 * summary, channelSerial the annotation's serial) to subscribers. A resume
 * (by channelSerial) finds a head whose summary changed by the annotation's
 * serial and sends the summary (channel.c).
 *
 * Bounded: a message's summary is at most maxMessageSize bytes of JSON. A
 * create that would pass it is counted without its clientId being listed
 * ("clipped": true, as Ably clips long lists); one that would pass it even
 * so (a new name or type) is refused with 40009. Once a list is clipped,
 * deletes of clients it does not list are approximate (the total drops). */
#ifndef SW_CORE_ANNOTATION_H
#define SW_CORE_ANNOTATION_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/channel.h"
#include "core/principal.h"
#include "proto/pmsg.h"

enum { SW_ANN_CREATE = 0, SW_ANN_DELETE = 1 };

/* Folds one annotation (action create or delete; type, name, clientId,
 * count) into summary, an object keyed by annotation type, in place.
 * max_bytes bounds the compact JSON of the result (see above). Returns 1
 * when the summary changed, 0 when not (an unknown method, a repeated
 * create, a delete of nothing), -1 with err (40161, 40003, 40009, 50000)
 * leaving summary unchanged. Pure. */
int annotation_summarise(json_t *summary, const sw_msg_t *ann, size_t max_bytes, sw_error_t *err);

/* Publishes n annotations (the array and its contents are consumed, also on
 * error) on ch as the principal p acting as caller_client_id. Each needs a
 * type, an action (absent: create) and the serial of a stored message;
 * id and timestamp are kept when set (the caller stamps them), serial and
 * connectionId are stamped here. Checks the namespace rule (93002), the
 * annotation-publish capability (40160), sizes (40009) and clientIds
 * (40012); the summaries are computed at once, then everything is stored
 * in one submission and delivered when durable, and the publisher told the
 * annotations' serials (channel_notify). Returns 0, or -1 with err. */
int annotation_publish(sw_channel_t *ch, const sw_principal_t *p, const char *caller_client_id, sw_msg_t *anns,
                       size_t n, const sw_publisher_t *who, sw_error_t *err);

/* The serial of a head's latest version (update, delete or append), its
 * seq when it has none: a head whose stored vseq is above it changed last
 * by an annotation (its summary). */
int64_t annotation_head_version(const sw_msg_t *head, int64_t seq);

/* The message.summary event of a head: action 4, its serial, id and the
 * given annotations object ({"summary": ...}), timestamp ts. Fields borrow
 * from head and annotations: the event must not be cleared. */
sw_msg_t annotation_summary_event(const sw_msg_t *head, json_t *annotations, int64_t ts);

/* The bus's deliver_annotation (core/bus.h; ud the server): annotation
 * vseq of message seq, fanned out as one node does (the annotation to
 * annotation subscribers, the new summary, when head is given, as a
 * message.summary). */
void annotation_bus_deliver(void *ud, const char *app_id, const char *channel, int64_t vseq, int64_t seq,
                            int64_t ts, const uint8_t *event, size_t event_len, const uint8_t *head,
                            size_t head_len);

#endif
