/* rx_compare.h: what the client's receive path makes of a frame, as
 * comparable JSON text, and the same for the full decoder (the reference
 * rx.c must agree with). Shared by tests/client/test_rx.c and
 * fuzz/fuzz_client_rx.c; the includer defines RX_EXPECT(cond) (its way of
 * failing) and includes internal.h first. */
#ifndef SWC_TESTS_RX_COMPARE_H
#define SWC_TESTS_RX_COMPARE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "internal.h"

static json_t *jstr_or_null(const char *s) { return s ? json_string(s) : json_null(); }

static json_t *describe_msg(const sw_message_t *m) {
  json_t *o = json_object();
  json_object_set_new(o, "id", jstr_or_null(m->id));
  json_object_set_new(o, "name", jstr_or_null(m->name));
  json_object_set_new(o, "type", json_integer(m->data_type));
  json_object_set_new(o, "len", json_integer((json_int_t)m->data_len));
  if (m->data) {
    sw_buf_t hex = {0};
    for (size_t i = 0; i < m->data_len; i++) buf_printf(&hex, "%02x", ((const uint8_t *)m->data)[i]);
    json_object_set_new(o, "data", json_stringn(hex.data ? (const char *)hex.data : "", hex.len));
    buf_free(&hex);
    RX_EXPECT(((const char *)m->data)[m->data_len] == 0); /* NUL-terminated even when binary */
  }
  json_object_set_new(o, "encoding", jstr_or_null(m->encoding));
  json_object_set_new(o, "clientId", jstr_or_null(m->client_id));
  json_object_set_new(o, "connectionId", jstr_or_null(m->connection_id));
  json_object_set_new(o, "timestamp", json_integer(m->timestamp));
  json_object_set_new(o, "serial", jstr_or_null(m->serial));
  json_object_set_new(o, "extras", jstr_or_null(m->extras));
  json_object_set_new(o, "action", json_integer(m->action));
  json_object_set_new(o, "version", jstr_or_null(m->version));
  return o;
}

static char *describe(const sw_pmsg_t *pm, const sw_message_t *msgs, size_t n) {
  json_t *o = json_object();
  json_object_set_new(o, "action", json_integer(pm->action));
  if (pm->has_flags) json_object_set_new(o, "flags", json_integer(pm->flags));
  if (pm->has_count) json_object_set_new(o, "count", json_integer(pm->count));
  if (pm->has_msg_serial) json_object_set_new(o, "msgSerial", json_integer(pm->msg_serial));
  json_object_set_new(o, "timestamp", json_integer(pm->timestamp));
  json_object_set_new(o, "id", jstr_or_null(pm->id));
  json_object_set_new(o, "channel", jstr_or_null(pm->channel));
  json_object_set_new(o, "channelSerial", jstr_or_null(pm->channel_serial));
  json_object_set_new(o, "connectionId", jstr_or_null(pm->connection_id));
  json_object_set_new(o, "error", json_integer(pm->error.code));
  json_t *res = json_array();
  for (size_t i = 0; i < pm->n_res; i++) {
    json_t *s = json_array();
    for (size_t k = 0; k < pm->res[i].n_serials; k++) json_array_append_new(s, jstr_or_null(pm->res[i].serials[k]));
    json_array_append_new(res, s);
  }
  json_object_set_new(o, "res", res);
  json_t *arr = json_array();
  for (size_t i = 0; i < n; i++) json_array_append_new(arr, describe_msg(&msgs[i]));
  json_object_set_new(o, "messages", arr);
  char *text = json_dumps(o, JSON_COMPACT);
  json_decref(o);
  return text;
}

/* The full decoder's view of p[0..n) (codec_decode_pmsg, then swc_message_view
 * as rx.c's full_decode does), described; -1 if it refuses the frame. */
static int old_path(sw_format_t f, const uint8_t *p, size_t n, char **desc) {
  sw_pmsg_t pm;
  sw_error_t err = {0};
  *desc = NULL;
  if (codec_decode_pmsg(f, p, n, &pm, &err)) {
    if (getenv("RX_DEBUG")) fprintf(stderr, "old path: %s\n", err.message);
    return -1;
  }
  size_t k = pm.action == SW_ACTION_MESSAGE ? pm.n_messages : 0;
  sw_message_t *views = calloc(k + 1, sizeof *views);
  char **extras = calloc(k + 1, sizeof *extras);
  char ids[SWC_SYNTH_ID_CAP(SWC_MAX_SYNTH_ID)];
  for (size_t i = 0; i < k; i++) {
    /* One id buffer per message would be needed to keep them all; the
     * synthesised ids are short, so copy them out. */
    swc_message_view(&pm.messages[i], &pm, i, &views[i], &extras[i], ids, sizeof ids);
    if (views[i].id == ids) views[i].id = strdup(ids);
  }
  *desc = describe(&pm, views, k);
  for (size_t i = 0; i < k; i++) {
    if (!pm.messages[i].id) free((char *)views[i].id);
    free(extras[i]);
  }
  free(views);
  free(extras);
  pmsg_free(&pm);
  return 0;
}

#endif
