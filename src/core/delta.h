/* delta.h: delta compression (the channel param delta=vcdiff; Ably's
 * RTL18-RTL20, PC3).
 *
 * A subscriber that attached with {delta: "vcdiff"} gets each new message
 * whose predecessor it holds as a VCDIFF delta (proto/vcdiff.c) from that
 * predecessor's data: data = the delta's bytes, encoding = the message's
 * own, then "utf-8" for string data, then "vcdiff" (the JSON encoder adds
 * "base64"), extras.delta = {from: the predecessor's id, format:
 * "vcdiff"}. Everything else goes whole, and a client takes a whole
 * message at any time as its next base.
 *
 * The channel keeps one base: the data of the last message fanned out
 * (at most maxMessageSize bytes), while it has delta subscribers. Each
 * fan-out computes its deltas once, lazily, and encodes them once per wire
 * format; every subscriber that holds the base (its last message from this
 * channel was it) gets those same bytes. A subscriber that does not (it
 * just attached, it resumed, its last message was a version, a summary, an
 * occupancy event, one skipped by echo=false) gets the messages whole.
 *
 * ably-js checks extras.delta.from against the id of the last message it
 * processed and re-attaches from its last channelSerial when they differ
 * (40018, RTL18): the replay then sends whole messages, and a replayed
 * message that is the channel's base puts the subscriber back in step. */
#ifndef SW_CORE_DELTA_H
#define SW_CORE_DELTA_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/frame.h"
#include "proto/pmsg.h"

typedef struct sw_channel sw_channel_t;
typedef struct sw_attach sw_attach_t;
typedef struct sw_delta sw_delta_t;

/* On ATTACH: a subscribes to deltas when params hold delta=vcdiff (not on
 * a derived channel). It starts out of step: its next message goes whole.
 * Returns 0, or -1 on OOM (the channel's state could not be created). */
int delta_attach(sw_attach_t *a, const json_t *params);

/* Around a fan-out of new messages m (channel.c's fanout): begin makes m
 * the messages delta_frame answers for, end makes m's last message the
 * channel's base. NULL-safe no-ops on a channel without delta subscribers. */
void delta_begin(sw_channel_t *ch, const sw_pmsg_t *m);
void delta_end(sw_channel_t *ch, const sw_pmsg_t *m);

/* For a delta subscriber a about to be sent MESSAGE m: the frame to send
 * instead (a new reference), or NULL to send m whole. Records what a
 * holds afterwards either way; call it for every MESSAGE a is sent. */
sw_frame_t *delta_frame(sw_attach_t *a, const sw_pmsg_t *m);

/* a was sent a MESSAGE other than by a fan-out of new messages: msg, the
 * replayed message seq as first published, or NULL and 0 for anything else
 * (a version, a summary, an occupancy event). A replayed message that is
 * the channel's latest becomes its base if it has none (a subscriber that
 * attached since the last fan-out holds it: deltas can follow). */
void delta_sent_whole(sw_attach_t *a, const sw_msg_t *msg, int64_t seq);

/* A message of ch changed (a version, an append): every subscriber's next
 * message goes whole, as the base it holds is no longer known. */
void delta_forget(sw_channel_t *ch);

/* Frees ch's delta state (channel_free). */
void delta_free(sw_channel_t *ch);

#endif
