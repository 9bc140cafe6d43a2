#include "core/occ_share.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bus.h"
#include "core/server.h"

/* One other node's last counts on a channel. */
typedef struct sw_occ_remote {
  char node[32];
  sw_occupancy_t o;
  int64_t expires_at;
} sw_occ_remote_t;

/* A channel's share of a cluster's occupancy: allocated on a shared bus
 * only (one pointer in every channel otherwise: channels are per-idle-
 * connection memory too). */
struct sw_occ_share {
  sw_occupancy_t announced; /* this node's counts last announced, and when */
  int64_t announced_ms;
  sw_occ_remote_t *remote;  /* the other nodes' counts (SW_OCC_SHARE_MAX_NODES) */
  size_t n_remote;
};

static struct sw_occ_share *share_of(sw_channel_t *ch) {
  sw_channel_ext_t *x = channel_ext(ch);
  if (x && !x->occ_share) x->occ_share = calloc(1, sizeof *x->occ_share);
  return x ? x->occ_share : NULL;
}

/* "<server id>\n<n0> <n1> ... <n7>": small, text, read bounded. */
static void announce(sw_channel_t *ch, const sw_occupancy_t *o, int64_t now) {
  char buf[32 + 1 + SW_OCC_COUNT * 21 + 1];
  int len = snprintf(buf, sizeof buf, "%s\n", ch->srv->server_id);
  for (int k = 0; k < SW_OCC_COUNT && len > 0 && (size_t)len < sizeof buf; k++)
    len += snprintf(buf + len, sizeof buf - (size_t)len, k ? " %" PRId64 : "%" PRId64, o->n[k]);
  if (len <= 0 || (size_t)len >= sizeof buf) return;
  /* Best effort: while the store is down the others' copies expire. */
  struct sw_occ_share *sh = share_of(ch);
  if (!sh) return;
  bus_announce(ch->srv->bus, ch->app->id, ch->name, SW_BUS_SIDE_OCCUPANCY, (const uint8_t *)buf, (size_t)len, NULL, 0);
  sh->announced = *o;
  sh->announced_ms = now;
}

static bool shared(const sw_channel_t *ch) {
  return ch->srv->bus && bus_shared(ch->srv->bus) && !channel_base(ch);
}

/* This node's own counts (core/channel.c's, without the others'). */
static sw_occupancy_t own(const sw_channel_t *ch) {
  sw_occupancy_t o = channel_occupancy_local(ch);
  o.n[SW_OCC_PRESENCE_MEMBERS] = 0; /* every node has the whole set */
  return o;
}

void occ_share_tick(sw_channel_t *ch, int64_t now) {
  if (!shared(ch)) return;
  struct sw_occ_share *sh = share_of(ch);
  if (!sh) return;
  size_t k = 0;
  for (size_t i = 0; i < sh->n_remote; i++)
    if (sh->remote[i].expires_at > now) sh->remote[k++] = sh->remote[i];
  sh->n_remote = k;
  if (!ch->bus_ready) return;
  sw_occupancy_t o = own(ch);
  bool changed = memcmp(&o, &sh->announced, sizeof o) != 0, edge = false;
  for (int m = 0; m < SW_OCC_COUNT; m++) edge = edge || ((o.n[m] == 0) != (sh->announced.n[m] == 0));
  /* As [meta]occupancy itself: a change at most once a second (the tick is
   * 250 ms), at once when a count goes from zero to some or back. */
  int64_t since = now - sh->announced_ms;
  if ((changed && (edge || since >= SW_OCCUPANCY_DEBOUNCE_MS)) || (ch->subs && since >= SW_OCC_SHARE_HEARTBEAT_MS))
    announce(ch, &o, now);
}

void occ_share_event(sw_channel_t *ch, const uint8_t *payload, size_t len, int64_t now) {
  char buf[32 + 1 + SW_OCC_COUNT * 21 + 1];
  if (len >= sizeof buf) return;
  memcpy(buf, payload, len);
  buf[len] = '\0';
  char *nl = strchr(buf, '\n');
  if (!nl || nl == buf || (size_t)(nl - buf) >= sizeof ((sw_occ_remote_t *)0)->node) return;
  *nl = '\0';
  sw_occupancy_t o = {{0}};
  char *p = nl + 1, *end;
  for (int k = 0; k < SW_OCC_COUNT; k++) {
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0) return;
    o.n[k] = v;
    p = end;
  }
  struct sw_occ_share *sh = share_of(ch);
  if (!sh) return;
  sw_occ_remote_t *r = NULL;
  for (size_t i = 0; i < sh->n_remote && !r; i++)
    if (strcmp(sh->remote[i].node, buf) == 0) r = &sh->remote[i];
  if (!r) {
    if (sh->n_remote >= SW_OCC_SHARE_MAX_NODES) return;
    if (!sh->remote && !(sh->remote = calloc(SW_OCC_SHARE_MAX_NODES, sizeof *sh->remote))) return;
    r = &sh->remote[sh->n_remote++];
    memcpy(r->node, buf, (size_t)(nl - buf) + 1); /* checked shorter than node above */
  }
  r->o = o;
  r->expires_at = now + SW_OCC_SHARE_TTL_MS;
}

void occ_share_add(const sw_channel_t *ch, sw_occupancy_t *o, int64_t now) {
  const struct sw_occ_share *sh = channel_xr(ch)->occ_share;
  for (size_t i = 0; sh && i < sh->n_remote; i++) {
    if (sh->remote[i].expires_at <= now) continue;
    for (int k = 0; k < SW_OCC_COUNT; k++)
      if (k != SW_OCC_PRESENCE_MEMBERS) o->n[k] += sh->remote[i].o.n[k];
  }
}

void occ_share_free(sw_channel_t *ch) {
  sw_occupancy_t zero = {{0}};
  struct sw_occ_share *sh = channel_xr(ch)->occ_share;
  if (sh && shared(ch) && ch->bus_ready && memcmp(&zero, &sh->announced, sizeof zero) != 0) announce(ch, &zero, 0);
  if (!sh) return;
  free(sh->remote);
  free(sh);
  ch->ext->occ_share = NULL;
}
