/* rollup.h: append rollup, Ably's `appendRollupWindow` transport param
 * (docs/ai-transport.md, "Append rollup").
 *
 * Ably rolls the appends one connection publishes to one message within a
 * window into one message: the first append goes out at once, later ones
 * wait until the window since the last delivery ends and then go as one
 * message.append whose data is their fragments joined, with the last one's
 * version, extras and serial. The window belongs to the publishing
 * connection (`transportParams: {appendRollupWindow: N}`, 0 to 500 ms,
 * default 40, or the config's limits.appendRollupWindow), so every
 * subscriber gets the same grouping, encoded once per wire format.
 *
 * Only live fan-out changes. Every append is still stored and acknowledged
 * on its own (history, rewind, resume and late attachers read heads, as
 * before). Held appends are delivered before anything else that carries a
 * channelSerial goes to the channel's subscribers (channel_broadcast, an
 * update or delete: rollup_flush), so channelSerials still reach a client
 * in order and a resume from the last one it saw misses nothing.
 *
 * Windows end on one timer wheel per server (1 ms slots), not on the 250 ms
 * tick, which is too coarse for 20 or 40 ms. */
#ifndef SW_CORE_ROLLUP_H
#define SW_CORE_ROLLUP_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/pmsg.h"

typedef struct sw_channel sw_channel_t;
typedef struct sw_server sw_server_t;

#define SW_ROLLUP_DEFAULT_MS 40 /* Ably's default */
#define SW_ROLLUP_MAX_MS 500    /* Ably's maximum */
/* Messages per channel with a window open (held appends, or a delivery
 * less than a window ago). At the bound a new stream's appends are not
 * rolled up until one closes; what is held goes out first. */
#define SW_ROLLUP_MAX_STREAMS 32

/* The window a connection asked for with the appendRollupWindow transport
 * param (value NULL: absent): whole milliseconds, 0 to SW_ROLLUP_MAX_MS
 * (more is taken as the maximum); absent or not a number: dflt (the
 * server's limits.appendRollupWindow, by default SW_ROLLUP_DEFAULT_MS). */
int rollup_window_param(const char *value, int dflt);

/* One durable append on its way to live subscribers. */
typedef struct sw_rollup_in {
  int64_t seq;         /* the message */
  int64_t vseq;        /* the append's version seq */
  const char *serial;  /* its version serial: the delivery's channelSerial */
  const char *conn_id; /* the publishing connection ("" for REST) */
  int window_ms;       /* its appendRollupWindow; 0: deliver at once */
  sw_msg_t *event;     /* message.append with the fragment; taken when held */
  unsigned gen;        /* the head just after it (mutation.c, head_after) */
  size_t data_len;
} sw_rollup_in_t;

/* Holds the append for its window: true (the event is taken), or false:
 * the caller delivers it now, after every append the channel held was
 * delivered (so that the order of channelSerials is kept). */
bool rollup_append(sw_channel_t *ch, sw_rollup_in_t *in);
/* Delivers every append ch holds, oldest channelSerial first. Called
 * before anything else with a channelSerial is fanned out on ch. */
void rollup_flush(sw_channel_t *ch);
/* Forgets ch's held appends (its subscribers are gone). */
void rollup_channel_free(sw_channel_t *ch);
/* Shutdown: delivers everything held and closes the wheel's timer; later
 * appends are delivered at once. */
void rollup_shutdown(sw_server_t *srv);

#endif
