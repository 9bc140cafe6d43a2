/* occ_share.h: occupancy across the nodes of a cluster (a shared bus,
 * core/bus.h side events; docs/cluster.md "Occupancy across nodes").
 *
 * A node holding a channel announces its own attachment counts on the
 * channel's side channel when they change (at most once a second unless a
 * count goes from zero to some or back, checked on the tick) and every SW_OCC_SHARE_HEARTBEAT_MS; the other nodes holding the
 * channel keep each node's last counts for SW_OCC_SHARE_TTL_MS and add
 * them to their own. presenceMembers is not announced: every node holding
 * the channel has the whole member set already. With bus_local nothing is
 * announced and nothing added. */
#ifndef SW_CORE_OCC_SHARE_H
#define SW_CORE_OCC_SHARE_H

#include <stddef.h>
#include <stdint.h>

#include "core/channel.h"

#define SW_OCC_SHARE_HEARTBEAT_MS 5000
#define SW_OCC_SHARE_TTL_MS 15000
#define SW_OCC_SHARE_MAX_NODES 64 /* other nodes' counts kept per channel; beyond, not counted */

/* The side-event kind of an occupancy announcement (beside core/bus.h's). */
#define SW_BUS_SIDE_OCCUPANCY 3

/* On the tick, for a channel this node holds on a shared bus. */
void occ_share_tick(sw_channel_t *ch, int64_t now);
/* Another node's announcement. */
void occ_share_event(sw_channel_t *ch, const uint8_t *payload, size_t len, int64_t now);
/* Adds the other nodes' live counts to o. */
void occ_share_add(const sw_channel_t *ch, sw_occupancy_t *o, int64_t now);
/* The channel is freed: its zeros are announced (if it announced counts)
 * and the other nodes' counts dropped. */
void occ_share_free(sw_channel_t *ch);

#endif
