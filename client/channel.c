/* channel.c: channels (RTL*), subscriptions, and the publish pipeline
 * (RTN7 ACK/NACK, RTN19a resend).
 *
 * Channels are reference counted: the client's table holds one reference
 * until sw_channel_release(), and every deferred call, publish and running
 * handler holds another, so a callback can release the channel it is
 * called for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

SW_API const char *sw_channel_state_name(sw_channel_state_t s) {
  static const char *names[] = {"initialized", "attaching", "attached", "detaching",
                                "detached",    "suspended", "failed"};
  return (unsigned)s < sizeof names / sizeof *names ? names[s] : "unknown";
}

/* ---- lifetime ---- */

static void free_subs(sw_channel_t *ch) {
  swc_sub_t *s = ch->subs;
  while (s) {
    swc_sub_t *n = s->next;
    free(s->name);
    free(s);
    s = n;
  }
  ch->subs = NULL;
}

static void free_waiters(swc_waiter_t *w) {
  while (w) {
    swc_waiter_t *n = w->next;
    free(w);
    w = n;
  }
}

void swc_channel_ref(sw_channel_t *ch) {
  ch->refs++;
}

void swc_channel_unref(sw_channel_t *ch) {
  if (--ch->refs > 0) return;
  free_subs(ch);
  free_waiters(ch->attach_waiters);
  free_waiters(ch->detach_waiters);
  free(ch->name);
  free(ch->serial);
  free(ch->attach_serial);
  json_decref(ch->params);
  free(ch);
}

/* Every channel of c with a reference held, so handlers may release any. */
static sw_channel_t **snapshot(sw_client_t *c, size_t *n) {
  size_t count = HASH_COUNT(c->channels);
  *n = 0;
  if (!count) return NULL;
  sw_channel_t **arr = malloc(count * sizeof *arr);
  if (!arr) return NULL;
  for (sw_channel_t *ch = c->channels; ch; ch = ch->hh.next) {
    swc_channel_ref(ch);
    arr[(*n)++] = ch;
  }
  return arr;
}

static void unsnapshot(sw_channel_t **arr, size_t n) {
  for (size_t i = 0; i < n; i++) swc_channel_unref(arr[i]);
  free(arr);
}

/* ---- state ---- */

static void replace(char **dst, const char *src) {
  char *d = src ? strdup(src) : NULL;
  free(*dst);
  *dst = d;
}

/* The channelSerial (RTL15b) changes with every message: overwritten in
 * place while it fits. */
static void set_serial(sw_channel_t *ch, const char *src) {
  size_t n = src ? strlen(src) + 1 : 0;
  if (n && n <= ch->serial_cap) {
    memcpy(ch->serial, src, n);
    return;
  }
  replace(&ch->serial, src);
  ch->serial_cap = ch->serial ? n : 0;
}

static bool live(const sw_channel_t *ch) {
  return !ch->c->freeing && !ch->released;
}

static void set_state(sw_channel_t *ch, sw_channel_state_t s, const sw_errinfo_t *reason, bool resumed) {
  sw_channel_state_t prev = ch->state;
  ch->state = s;
  if (reason) {
    ch->reason = *reason;
    ch->has_reason = true;
  }
  if (s == SW_CHANNEL_DETACHED || s == SW_CHANNEL_FAILED) set_serial(ch, NULL); /* RTL15b2 */
  if (s != SW_CHANNEL_ATTACHING && s != SW_CHANNEL_DETACHING && s != SW_CHANNEL_SUSPENDED)
    ch->deadline_kind = SWC_DEADLINE_NONE;
  if (live(ch) && ch->state_cb) ch->state_cb(ch, prev, s, reason, resumed, ch->state_ud);
}

static void complete_waiters(sw_channel_t *ch, swc_waiter_t **list, const sw_errinfo_t *err) {
  swc_waiter_t *w = *list;
  *list = NULL;
  while (w) {
    swc_waiter_t *n = w->next;
    if (live(ch)) w->cb(ch, err, w->ud);
    free(w);
    w = n;
  }
}

static int add_waiter(swc_waiter_t **list, sw_channel_done_cb cb, void *ud) {
  if (!cb) return 0;
  swc_waiter_t *w = calloc(1, sizeof *w);
  if (!w) return SW_ENOMEM;
  w->cb = cb;
  w->ud = ud;
  swc_waiter_t **p = list;
  while (*p) p = &(*p)->next;
  *p = w;
  return 0;
}

static void on_chan_timer(uv_timer_t *t) {
  swc_channels_timer(t->data);
}

static void set_deadline(sw_channel_t *ch, int kind, uint64_t in_ms) {
  sw_client_t *c = ch->c;
  ch->deadline_kind = kind;
  ch->deadline = uv_now(c->loop) + in_ms;
  if (!uv_is_active((uv_handle_t *)&c->t_chan) || uv_timer_get_due_in(&c->t_chan) > in_ms)
    uv_timer_start(&c->t_chan, on_chan_timer, in_ms, 0);
}

static void send_attach(sw_channel_t *ch) {
  sw_client_t *c = ch->c;
  sw_pmsg_t m = {.action = SW_ACTION_ATTACH, .channel = ch->name, .channel_serial = ch->serial,
                 .params = ch->params};
  /* RTL4c1: the channelSerial asks the server to continue from there;
   * RTL4j: ATTACH_RESUME when this is not the first attach. */
  int64_t flags = (int64_t)ch->modes | (ch->attached_before ? SW_FLAG_ATTACH_RESUME : 0);
  if (flags) {
    m.flags = flags;
    m.has_flags = true;
  }
  swc_send_pmsg(c, &m);
  set_deadline(ch, SWC_DEADLINE_ATTACH, (uint64_t)c->t_request);
}

static void send_detach(sw_channel_t *ch) {
  sw_pmsg_t m = {.action = SW_ACTION_DETACH, .channel = ch->name};
  swc_send_pmsg(ch->c, &m);
  set_deadline(ch, SWC_DEADLINE_DETACH, (uint64_t)ch->c->t_request);
}

static bool conn_up(const sw_client_t *c) {
  return c->state == SW_CONN_CONNECTED && c->ws_connected;
}

/* To ATTACHING: sends ATTACH now if connected, else on CONNECTED (RTL4i). */
static void begin_attach(sw_channel_t *ch, const sw_errinfo_t *reason) {
  if (conn_up(ch->c)) send_attach(ch);
  else ch->deadline_kind = SWC_DEADLINE_NONE;
  set_state(ch, SW_CHANNEL_ATTACHING, reason, false);
}

static void suspend(sw_channel_t *ch, const sw_errinfo_t *reason, bool retry) {
  set_state(ch, SW_CHANNEL_SUSPENDED, reason, false);
  if (!live(ch)) return;
  if (retry) set_deadline(ch, SWC_DEADLINE_RETRY, swc_backoff_ms(ch->c->t_chan_retry, ++ch->retry_count)); /* RTL13b */
  complete_waiters(ch, &ch->attach_waiters, reason);
}

void swc_channels_timer(sw_client_t *c) {
  size_t n;
  sw_channel_t **arr = snapshot(c, &n);
  uint64_t now = uv_now(c->loop);
  for (size_t i = 0; i < n && !c->freeing; i++) {
    sw_channel_t *ch = arr[i];
    if (!ch->deadline_kind || ch->deadline > now || ch->released) continue;
    int kind = ch->deadline_kind;
    ch->deadline_kind = SWC_DEADLINE_NONE;
    sw_errinfo_t e;
    if (kind == SWC_DEADLINE_ATTACH && ch->state == SW_CHANNEL_ATTACHING) {
      swc_set_error(&e, SW_ERR_CHANNEL_TIMEOUT, 408, "no ATTACHED for %s within %lld ms", ch->name,
                    (long long)c->t_request);
      suspend(ch, &e, true); /* RTL4f */
    } else if (kind == SWC_DEADLINE_DETACH && ch->state == SW_CHANNEL_DETACHING) {
      swc_set_error(&e, SW_ERR_CHANNEL_TIMEOUT, 408, "no DETACHED for %s within %lld ms", ch->name,
                    (long long)c->t_request);
      set_state(ch, ch->before_detach, &e, false); /* RTL5f */
      complete_waiters(ch, &ch->detach_waiters, &e);
    } else if (kind == SWC_DEADLINE_RETRY && ch->state == SW_CHANNEL_SUSPENDED && conn_up(c)) {
      begin_attach(ch, NULL);
    }
  }
  /* Re-arm for the earliest remaining deadline. */
  uint64_t next = UINT64_MAX;
  for (size_t i = 0; i < n; i++)
    if (arr[i]->deadline_kind && !arr[i]->released && arr[i]->deadline < next) next = arr[i]->deadline;
  if (!c->freeing && next != UINT64_MAX) uv_timer_start(&c->t_chan, on_chan_timer, next > now ? next - now : 0, 0);
  unsnapshot(arr, n);
}

/* ---- connection state ---- */

void swc_channels_on_connected(sw_client_t *c) {
  size_t n;
  sw_channel_t **arr = snapshot(c, &n);
  for (size_t i = 0; i < n && !c->freeing && conn_up(c); i++) {
    sw_channel_t *ch = arr[i];
    if (ch->released) continue;
    if (ch->state == SW_CHANNEL_ATTACHING || ch->state == SW_CHANNEL_ATTACHED || ch->state == SW_CHANNEL_SUSPENDED)
      begin_attach(ch, NULL);
    else if (ch->state == SW_CHANNEL_DETACHING)
      send_detach(ch);
  }
  unsnapshot(arr, n);
}

void swc_channels_on_conn_state(sw_client_t *c, sw_conn_state_t s, const sw_errinfo_t *reason) {
  size_t n;
  sw_channel_t **arr = snapshot(c, &n);
  sw_errinfo_t closed;
  swc_set_error(&closed, SW_ERR_CONNECTION_CLOSED, 400, "connection closed");
  for (size_t i = 0; i < n && !c->freeing; i++) {
    sw_channel_t *ch = arr[i];
    sw_channel_state_t st = ch->state;
    if (ch->released || st == SW_CHANNEL_INITIALIZED || st == SW_CHANNEL_DETACHED || st == SW_CHANNEL_FAILED) continue;
    if (s == SW_CONN_SUSPENDED && (st == SW_CHANNEL_ATTACHING || st == SW_CHANNEL_ATTACHED)) {
      suspend(ch, reason, false); /* RTL3c: re-attached on CONNECTED */
    } else if (s == SW_CONN_FAILED) {
      set_state(ch, SW_CHANNEL_FAILED, reason, false); /* RTL3a */
      complete_waiters(ch, &ch->attach_waiters, reason);
      complete_waiters(ch, &ch->detach_waiters, reason);
    } else if (s == SW_CONN_CLOSED) {
      set_state(ch, SW_CHANNEL_DETACHED, NULL, false); /* RTL3b */
      complete_waiters(ch, &ch->attach_waiters, &closed);
      complete_waiters(ch, &ch->detach_waiters, NULL);
    }
  }
  unsnapshot(arr, n);
}

/* ---- incoming ---- */

/* Hands msgs[0..n) to the subscriptions, in order. */
static void dispatch(sw_channel_t *ch, const sw_message_t *msgs, size_t n) {
  ch->dispatching++;
  for (size_t i = 0; i < n && live(ch); i++) {
    const sw_message_t *v = &msgs[i];
    for (swc_sub_t *s = ch->subs; s && live(ch); s = s->next) {
      if (s->removed || (s->name && (!v->name || strcmp(s->name, v->name) != 0))) continue;
      s->cb(ch, v, s->ud);
    }
  }
  if (--ch->dispatching == 0) {
    /* Unsubscribed during the dispatch: unlink now. */
    for (swc_sub_t **p = &ch->subs; *p;) {
      if ((*p)->removed) {
        swc_sub_t *dead = *p;
        *p = dead->next;
        free(dead->name);
        free(dead);
      } else {
        p = &(*p)->next;
      }
    }
  }
}

/* The channel a frame is for. Most often the one of the client's previous
 * frame, which saves the hash table's own (cold) memory. c->rx_ch is only
 * ever a channel found in the table, and unlink_channel (the one way out of
 * it) drops it: the table holds a reference, so rx_ch is alive. */
static sw_channel_t *find_rx_channel(sw_client_t *c, const char *name) {
  sw_channel_t *ch = c->rx_ch;
  if (ch && strcmp(ch->name, name) == 0) return ch;
  ch = NULL;
  HASH_FIND_STR(c->channels, name, ch);
  if (ch) c->rx_ch = ch;
  return ch;
}

/* Takes ch out of c's table, and out of the receive cache with it; the
 * caller then drops the table's reference. */
static void unlink_channel(sw_client_t *c, sw_channel_t *ch) {
  HASH_DEL(c->channels, ch);
  if (c->rx_ch == ch) c->rx_ch = NULL;
  ch->released = true;
}

void swc_channel_on_pmsg(sw_client_t *c, const swc_rx_pmsg_t *r) {
  const sw_pmsg_t *m = &r->pm;
  sw_channel_t *ch = find_rx_channel(c, m->channel);
  if (!ch) return;
  swc_channel_ref(ch);
  sw_errinfo_t e = {0};
  if (m->error.code) swc_err_from(&e, &m->error);
  switch (m->action) {
  case SW_ACTION_ATTACHED: {
    bool resumed = m->has_flags && (m->flags & SW_FLAG_RESUMED);
    if (ch->state == SW_CHANNEL_ATTACHING) {
      if (m->channel_serial) {
        set_serial(ch, m->channel_serial); /* RTL15b */
        replace(&ch->attach_serial, m->channel_serial);
      }
      ch->attached_before = true;
      ch->retry_count = 0;
      set_state(ch, SW_CHANNEL_ATTACHED, e.code ? &e : NULL, resumed);
      complete_waiters(ch, &ch->attach_waiters, NULL);
    } else if (ch->state == SW_CHANNEL_ATTACHED) {
      if (m->channel_serial) set_serial(ch, m->channel_serial);
      /* RTL12: an unsolicited ATTACHED is an UPDATE when something changed. */
      if (e.code || !resumed) set_state(ch, SW_CHANNEL_ATTACHED, e.code ? &e : NULL, resumed);
    }
    break;
  }
  case SW_ACTION_DETACHED:
    if (!e.code) swc_set_error(&e, SW_ERR_CHANNEL_DETACHED, 400, "channel %s detached by the server", ch->name);
    if (ch->state == SW_CHANNEL_DETACHING) {
      set_state(ch, SW_CHANNEL_DETACHED, NULL, false);
      complete_waiters(ch, &ch->detach_waiters, NULL);
      if (live(ch) && ch->attach_after_detach) {
        ch->attach_after_detach = false;
        begin_attach(ch, NULL);
      }
    } else if (ch->state == SW_CHANNEL_ATTACHED || ch->state == SW_CHANNEL_SUSPENDED) {
      begin_attach(ch, &e); /* RTL13a */
    } else if (ch->state == SW_CHANNEL_ATTACHING) {
      suspend(ch, &e, true); /* RTL13b */
    }
    break;
  case SW_ACTION_ERROR:
    if (!e.code) swc_set_error(&e, SW_ERR_CHANNEL_FAILED, 500, "channel error");
    if (ch->state != SW_CHANNEL_FAILED) {
      set_state(ch, SW_CHANNEL_FAILED, &e, false); /* RTL14 */
      complete_waiters(ch, &ch->attach_waiters, &e);
      complete_waiters(ch, &ch->detach_waiters, &e);
    }
    break;
  case SW_ACTION_MESSAGE:
    if (ch->state != SW_CHANNEL_ATTACHED) break; /* RTL17 */
    if (m->channel_serial) set_serial(ch, m->channel_serial);
    dispatch(ch, r->msgs, r->n_msgs);
    break;
  default:
    if (m->channel_serial && ch->state == SW_CHANNEL_ATTACHED) set_serial(ch, m->channel_serial);
    break;
  }
  swc_channel_unref(ch);
}

/* ---- public channel API ---- */

SW_API sw_channel_t *sw_client_channel(sw_client_t *c, const char *name) {
  if (!c || c->freeing || !name || !*name) return NULL;
  sw_channel_t *ch = NULL;
  HASH_FIND_STR(c->channels, name, ch);
  if (ch) return ch;
  ch = calloc(1, sizeof *ch);
  if (!ch || !(ch->name = strdup(name))) {
    free(ch);
    return NULL;
  }
  ch->c = c;
  ch->refs = 1;
  ch->next_sub_id = 1;
  ch->state = SW_CHANNEL_INITIALIZED;
  HASH_ADD_KEYPTR(hh, c->channels, ch->name, strlen(ch->name), ch);
  return ch;
}

SW_API int sw_channel_release(sw_channel_t *ch) {
  if (!ch || ch->released) return SW_EINVAL;
  sw_client_t *c = ch->c;
  if ((ch->state == SW_CHANNEL_ATTACHED || ch->state == SW_CHANNEL_ATTACHING) && conn_up(c)) {
    sw_pmsg_t m = {.action = SW_ACTION_DETACH, .channel = ch->name};
    swc_send_pmsg(c, &m);
  }
  unlink_channel(c, ch);
  ch->deadline_kind = SWC_DEADLINE_NONE;
  for (swc_sub_t *s = ch->subs; s; s = s->next) s->removed = true;
  free_waiters(ch->attach_waiters);
  free_waiters(ch->detach_waiters);
  ch->attach_waiters = ch->detach_waiters = NULL;
  swc_channel_unref(ch);
  return SW_OK;
}

void swc_channels_free(sw_client_t *c) {
  sw_channel_t *ch, *tmp;
  HASH_ITER(hh, c->channels, ch, tmp) {
    unlink_channel(c, ch);
    swc_channel_unref(ch);
  }
}

SW_API const char *sw_channel_name(const sw_channel_t *ch) {
  return ch ? ch->name : NULL;
}

SW_API sw_channel_state_t sw_channel_state(const sw_channel_t *ch) {
  return ch ? ch->state : SW_CHANNEL_FAILED;
}

SW_API const sw_errinfo_t *sw_channel_error_reason(const sw_channel_t *ch) {
  return ch && ch->has_reason ? &ch->reason : NULL;
}

SW_API const char *sw_channel_serial(const sw_channel_t *ch) {
  return ch ? ch->serial : NULL;
}

SW_API sw_client_t *sw_channel_client(const sw_channel_t *ch) {
  return ch ? ch->c : NULL;
}

SW_API void sw_channel_on_state(sw_channel_t *ch, sw_channel_state_cb cb, void *ud) {
  if (!ch) return;
  ch->state_cb = cb;
  ch->state_ud = ud;
}

SW_API int sw_channel_set_modes(sw_channel_t *ch, uint32_t modes) {
  if (!ch || ch->released) return SW_EINVAL;
  uint32_t known = SW_CHANNEL_MODE_PRESENCE | SW_CHANNEL_MODE_PUBLISH | SW_CHANNEL_MODE_SUBSCRIBE |
                   SW_CHANNEL_MODE_PRESENCE_SUBSCRIBE;
  if (modes & ~known) return SW_EINVAL;
  ch->modes = modes;
  return SW_OK;
}

SW_API int sw_channel_set_param(sw_channel_t *ch, const char *key, const char *value) {
  if (!ch || ch->released || !key || !*key) return SW_EINVAL;
  if (!value) {
    if (ch->params) json_object_del(ch->params, key);
    return SW_OK;
  }
  if (!ch->params && !(ch->params = json_object())) return SW_ENOMEM;
  return json_object_set_new(ch->params, key, json_string(value)) ? SW_ENOMEM : SW_OK;
}

static void call_done(sw_client_t *c, swc_call_t *call) {
  (void)c;
  if (live(call->ch)) ((sw_channel_done_cb)call->cb)(call->ch, call->has_err ? &call->err : NULL, call->ud);
}

/* Runs a completion on the next iteration. */
static int defer_done(sw_channel_t *ch, sw_channel_done_cb cb, void *ud, const sw_errinfo_t *err) {
  if (!cb) return SW_OK;
  swc_call_t *call = swc_call_new(call_done);
  if (!call) return SW_ENOMEM;
  call->cb = (void *)cb;
  call->ud = ud;
  call->ch = ch;
  swc_channel_ref(ch);
  if (err) {
    call->err = *err;
    call->has_err = true;
  }
  return swc_defer(ch->c, call);
}

static bool can_attach(const sw_client_t *c) {
  return c->state != SW_CONN_CLOSING && c->state != SW_CONN_CLOSED && c->state != SW_CONN_FAILED &&
         c->state != SW_CONN_SUSPENDED;
}

SW_API int sw_channel_attach(sw_channel_t *ch, sw_channel_done_cb cb, void *ud) {
  if (!ch || ch->released || ch->c->freeing) return SW_EINVAL;
  if (!can_attach(ch->c)) return SW_ESTATE; /* RTL4b */
  if (ch->state == SW_CHANNEL_ATTACHED) return defer_done(ch, cb, ud, NULL);
  int rc = add_waiter(&ch->attach_waiters, cb, ud);
  if (rc) return rc;
  if (ch->state == SW_CHANNEL_ATTACHING) return SW_OK;
  if (ch->state == SW_CHANNEL_DETACHING) {
    ch->attach_after_detach = true;
    return SW_OK;
  }
  swc_channel_ref(ch);
  begin_attach(ch, NULL);
  swc_channel_unref(ch);
  return SW_OK;
}

SW_API int sw_channel_detach(sw_channel_t *ch, sw_channel_done_cb cb, void *ud) {
  if (!ch || ch->released || ch->c->freeing) return SW_EINVAL;
  sw_errinfo_t e;
  int rc = SW_OK;
  ch->attach_after_detach = false;
  swc_channel_ref(ch);
  switch (ch->state) {
  case SW_CHANNEL_INITIALIZED:
  case SW_CHANNEL_DETACHED:
    rc = defer_done(ch, cb, ud, NULL);
    break;
  case SW_CHANNEL_FAILED:
    swc_set_error(&e, SW_ERR_CHANNEL_FAILED, 400, "channel %s is failed", ch->name); /* RTL5b */
    rc = defer_done(ch, cb, ud, &e);
    break;
  case SW_CHANNEL_DETACHING:
    rc = add_waiter(&ch->detach_waiters, cb, ud);
    break;
  default:
    if (ch->attach_waiters) {
      swc_set_error(&e, SW_ERR_CHANNEL_FAILED, 400, "detach requested while attaching");
      complete_waiters(ch, &ch->attach_waiters, &e);
    }
    if ((ch->state == SW_CHANNEL_ATTACHED || ch->state == SW_CHANNEL_ATTACHING) && conn_up(ch->c)) {
      rc = add_waiter(&ch->detach_waiters, cb, ud);
      ch->before_detach = ch->state == SW_CHANNEL_ATTACHING ? SW_CHANNEL_ATTACHED : ch->state;
      send_detach(ch);
      set_state(ch, SW_CHANNEL_DETACHING, NULL, false);
    } else {
      /* Not attached on the server right now (RTL5j): detached at once. */
      set_state(ch, SW_CHANNEL_DETACHED, NULL, false);
      rc = defer_done(ch, cb, ud, NULL);
    }
  }
  swc_channel_unref(ch);
  return rc;
}

SW_API int sw_channel_subscribe(sw_channel_t *ch, const char *name, sw_message_cb cb, void *ud) {
  if (!ch || ch->released || ch->c->freeing || !cb) return SW_EINVAL;
  swc_sub_t *s = calloc(1, sizeof *s);
  if (!s || (name && !(s->name = strdup(name)))) {
    free(s);
    return SW_ENOMEM;
  }
  s->id = ch->next_sub_id++;
  s->cb = cb;
  s->ud = ud;
  swc_sub_t **p = &ch->subs;
  while (*p) p = &(*p)->next;
  *p = s;
  /* RTL7g: subscribing attaches; if that is refused, so is the subscription. */
  if (ch->state != SW_CHANNEL_ATTACHED && ch->state != SW_CHANNEL_ATTACHING) {
    int rc = sw_channel_attach(ch, NULL, NULL);
    if (rc) {
      sw_channel_unsubscribe(ch, s->id);
      return rc;
    }
  }
  return s->id;
}

SW_API int sw_channel_unsubscribe(sw_channel_t *ch, int id) {
  if (!ch || ch->released) return SW_EINVAL;
  bool found = false;
  for (swc_sub_t **p = &ch->subs; *p;) {
    swc_sub_t *s = *p;
    if ((id == 0 || s->id == id) && !s->removed) {
      found = true;
      if (ch->dispatching) {
        s->removed = true;
        p = &s->next;
      } else {
        *p = s->next;
        free(s->name);
        free(s);
      }
    } else {
      p = &s->next;
    }
  }
  return found || id == 0 ? SW_OK : SW_EINVAL;
}

/* ---- publishing ---- */

static void pub_free(swc_pub_t *p) {
  if (p->ch) swc_channel_unref(p->ch);
  for (size_t i = 0; i < p->pm.n_messages; i++) msg_clear(&p->msgs[i]);
  free(p);
}

static void pub_complete(sw_client_t *c, swc_pub_t *p, const sw_errinfo_t *err, const sw_publish_result_t *res) {
  if (p->cb && !c->freeing) {
    if (err) p->cb(p->ch, err, NULL, 0, p->ud);
    else p->cb(p->ch, NULL, res ? (const char *const *)res->serials : NULL, res ? res->n_serials : 0, p->ud);
  }
  pub_free(p);
}

static void send_pub(sw_client_t *c, swc_pub_t *p) {
  p->pm.msg_serial = p->msg_serial;
  p->pm.has_msg_serial = true;
  p->sent = true;
  swc_send_pmsg(c, &p->pm); /* on failure it stays pending and is resent on reconnect */
}

static void push_pending(sw_client_t *c, swc_pub_t *p) {
  p->next = NULL;
  if (c->p_tail) c->p_tail->next = p;
  else c->p_head = p;
  c->p_tail = p;
}

static void flush_queue(sw_client_t *c) {
  while (c->q_head && c->state == SW_CONN_CONNECTED && c->ws_connected) {
    swc_pub_t *p = c->q_head;
    c->q_head = p->next;
    if (!c->q_head) c->q_tail = NULL;
    p->msg_serial = c->msg_serial++;
    push_pending(c, p);
    send_pub(c, p);
  }
}

void swc_pubs_send_all(sw_client_t *c, bool resumed) {
  for (swc_pub_t *p = c->p_head; p; p = p->next) {
    if (!resumed) p->msg_serial = c->msg_serial++; /* RTN15c7: a new connection numbers from 0 */
    send_pub(c, p);                                /* RTN19a2 */
  }
  flush_queue(c);
}

void swc_pubs_on_ack(sw_client_t *c, const sw_pmsg_t *m, bool nack) {
  if (!m->has_msg_serial) return;
  int64_t first = m->msg_serial, count = m->has_count && m->count > 0 ? m->count : 1;
  sw_errinfo_t e;
  if (nack) {
    if (m->error.code) swc_err_from(&e, &m->error);
    else swc_set_error(&e, SW_ERR_CHANNEL_FAILED, 500, "message refused");
  }
  /* RTN7a: an ACK/NACK covers msgSerial first..first+count-1 (and, as
   * ably-js does, anything still pending before it). */
  while (c->p_head && c->p_head->msg_serial < first + count && !c->freeing) {
    swc_pub_t *p = c->p_head;
    c->p_head = p->next;
    if (!c->p_head) c->p_tail = NULL;
    int64_t idx = p->msg_serial - first;
    const sw_publish_result_t *res = !nack && idx >= 0 && (size_t)idx < m->n_res ? &m->res[idx] : NULL;
    pub_complete(c, p, nack ? &e : NULL, res);
  }
}

static swc_pub_t *pop_any(sw_client_t *c) {
  swc_pub_t *p = c->p_head;
  if (p) {
    c->p_head = p->next;
    if (!c->p_head) c->p_tail = NULL;
    return p;
  }
  p = c->q_head;
  if (p) {
    c->q_head = p->next;
    if (!c->q_head) c->q_tail = NULL;
  }
  return p;
}

void swc_pubs_fail_all(sw_client_t *c, const sw_errinfo_t *err) {
  swc_pub_t *p;
  while (!c->freeing && (p = pop_any(c))) pub_complete(c, p, err, NULL);
}

void swc_pubs_free_all(sw_client_t *c) {
  swc_pub_t *p;
  while ((p = pop_any(c))) pub_free(p);
}

static void call_pub_failed(sw_client_t *c, swc_call_t *call) {
  pub_complete(c, call->ptr, &call->err, NULL);
  call->ptr = NULL;
}

static void drop_pub(swc_call_t *call) {
  if (call->ptr) pub_free(call->ptr);
}

static int publish(sw_channel_t *ch, const sw_message_t *msgs, size_t n, int action, sw_publish_cb cb, void *ud) {
  if (!ch || ch->released || ch->c->freeing || !msgs || n == 0 || n > 1000) return SW_EINVAL;
  sw_client_t *c = ch->c;
  if (action > 0 && (!msgs[0].serial || !*msgs[0].serial)) return SW_EINVAL;
  bool up = c->state == SW_CONN_CONNECTED;
  bool queueable = c->state == SW_CONN_INITIALIZED || c->state == SW_CONN_CONNECTING ||
                   c->state == SW_CONN_DISCONNECTED || (up && !c->ws_connected);
  if (!up && !(queueable && c->queue_messages)) return SW_ESTATE; /* RTL6c2, RTL6c4 */
  /* One allocation for the publish and its messages; the channel name is
   * the channel's own (the publish holds a reference). */
  swc_pub_t *p = calloc(1, sizeof *p + n * sizeof *p->msgs);
  if (!p) return SW_ENOMEM;
  p->pm.action = SW_ACTION_MESSAGE;
  p->pm.channel = ch->name;
  p->pm.messages = p->msgs;
  uint64_t batch = c->id_counter++;
  for (size_t i = 0; i < n; i++) {
    sw_msg_t *m = &p->msgs[i];
    int rc = swc_message_import(&msgs[i], m);
    if (rc) {
      pub_free(p);
      return rc;
    }
    p->pm.n_messages = i + 1;
    m->action = action > 0 ? action : -1;
    if (action > 0) continue;
    free(m->serial);
    m->serial = NULL;
    if (c->idempotent && !m->id) {
      /* RSL1k1: base:index, unique per client; a resend keeps it. */
      char id[64];
      snprintf(id, sizeof id, "%s-%llu:%zu", c->id_prefix, (unsigned long long)batch, i);
      if (!(m->id = strdup(id))) {
        pub_free(p);
        return SW_ENOMEM;
      }
    }
  }
  for (size_t i = 0; i < n; i++) p->size += msg_size(&p->msgs[i]);
  p->ch = ch;
  swc_channel_ref(ch);
  p->cb = cb;
  p->ud = ud;

  sw_errinfo_t e = {0};
  if (ch->state == SW_CHANNEL_FAILED || ch->state == SW_CHANNEL_SUSPENDED)
    swc_set_error(&e, SW_ERR_CHANNEL_FAILED, 400, "channel %s is %s", ch->name, sw_channel_state_name(ch->state));
  else if (c->max_message_size > 0 && p->size > (size_t)c->max_message_size)
    swc_set_error(&e, 40009, 400, "message size %zu exceeds maxMessageSize %lld", p->size,
                  (long long)c->max_message_size); /* RSL1i */
  if (e.code) {
    swc_call_t *call = swc_call_new(call_pub_failed);
    if (!call) {
      pub_free(p);
      return SW_ENOMEM;
    }
    call->ptr = p;
    call->err = e;
    call->drop = drop_pub;
    return swc_defer(c, call);
  }
  p->next = NULL;
  if (c->q_tail) c->q_tail->next = p;
  else c->q_head = p;
  c->q_tail = p;
  flush_queue(c);
  return SW_OK;
}

SW_API int sw_channel_publish_messages(sw_channel_t *ch, const sw_message_t *messages, size_t n, sw_publish_cb cb,
                                       void *ud) {
  return publish(ch, messages, n, SW_MESSAGE_CREATE, cb, ud);
}

SW_API int sw_channel_publish(sw_channel_t *ch, const char *name, const char *data, sw_publish_cb cb, void *ud) {
  sw_message_t m = {.name = name, .data = data, .data_type = data ? SW_PAYLOAD_STRING : SW_PAYLOAD_NONE};
  return publish(ch, &m, 1, SW_MESSAGE_CREATE, cb, ud);
}

SW_API int sw_channel_update_message(sw_channel_t *ch, const sw_message_t *msg, sw_publish_cb cb, void *ud) {
  return publish(ch, msg, 1, SW_MESSAGE_UPDATE, cb, ud);
}

SW_API int sw_channel_delete_message(sw_channel_t *ch, const sw_message_t *msg, sw_publish_cb cb, void *ud) {
  return publish(ch, msg, 1, SW_MESSAGE_DELETE, cb, ud);
}

SW_API int sw_channel_append_message(sw_channel_t *ch, const sw_message_t *msg, sw_publish_cb cb, void *ud) {
  return publish(ch, msg, 1, SW_MESSAGE_APPEND, cb, ud);
}
