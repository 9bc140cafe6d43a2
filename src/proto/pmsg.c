/* pmsg.c: ownership of the pmsg.h structs (release, deep copy, size). */
#include "proto/pmsg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Most of a message's optional strings are absent: testing here skips a
 * call through the PLT per field (msg_clear ran 40 free() calls per AI
 * append, most of them free(NULL)). */
static inline void free_set(void *p) {
  if (p) free(p);
}

void data_clear(sw_data_t *d) {
  free_set(d->bytes);
  memset(d, 0, sizeof *d);
}

/* Leaves an empty message: zeroed, with action -1 (absent). */
void msg_clear(sw_msg_t *m) {
  free_set(m->id);
  free_set(m->client_id);
  free_set(m->connection_id);
  free_set(m->connection_key);
  free_set(m->name);
  free_set(m->encoding);
  free_set(m->serial);
  data_clear(&m->data);
  json_decref(m->extras);
  json_decref(m->version);
  json_decref(m->annotations);
  free_set(m->message_serial);
  free_set(m->type);
  memset(m, 0, sizeof *m);
  m->action = -1;
}

void presence_clear(sw_presence_t *p) {
  free(p->id);
  free(p->client_id);
  free(p->connection_id);
  free(p->encoding);
  data_clear(&p->data);
  json_decref(p->extras);
  memset(p, 0, sizeof *p);
}

void pmsg_free(sw_pmsg_t *p) {
  if (!p) return;
  free(p->id);
  free(p->channel);
  free(p->channel_serial);
  free(p->connection_id);
  free(p->connection_key);
  json_decref(p->params);
  free(p->auth_access_token);
  for (size_t i = 0; i < p->n_messages; i++) msg_clear(&p->messages[i]);
  free(p->messages);
  for (size_t i = 0; i < p->n_presence; i++) presence_clear(&p->presence[i]);
  free(p->presence);
  for (size_t i = 0; i < p->n_annotations; i++) msg_clear(&p->annotations[i]);
  free(p->annotations);
  for (size_t i = 0; i < p->n_res; i++) {
    for (size_t j = 0; j < p->res[i].n_serials; j++) free(p->res[i].serials[j]);
    free(p->res[i].serials);
  }
  free(p->res);
  /* connection_details is borrowed. */
  memset(p, 0, sizeof *p);
}

static int copy_str(char **dst, const char *src) {
  if (!src) return 0;
  return (*dst = strdup(src)) ? 0 : -ENOMEM;
}

static int copy_json(json_t **dst, const json_t *src) {
  if (!src) return 0;
  /* A deep copy: the copy may be amended without touching the original. */
  return (*dst = json_deep_copy(src)) ? 0 : -ENOMEM;
}

static int copy_data(sw_data_t *dst, const sw_data_t *src) {
  dst->kind = src->kind;
  dst->len = src->len;
  if (src->kind == SW_DATA_NONE) return 0;
  /* bytes is NUL-terminated even for binary data. */
  if (!(dst->bytes = malloc(src->len + 1))) return -ENOMEM;
  if (src->len) memcpy(dst->bytes, src->bytes, src->len);
  dst->bytes[src->len] = '\0';
  return 0;
}

int presence_copy(sw_presence_t *dst, const sw_presence_t *src) {
  memset(dst, 0, sizeof *dst);
  dst->action = src->action;
  dst->timestamp = src->timestamp;
  int rc = copy_str(&dst->id, src->id) || copy_str(&dst->client_id, src->client_id) ||
           copy_str(&dst->connection_id, src->connection_id) || copy_str(&dst->encoding, src->encoding) ||
           copy_json(&dst->extras, src->extras) || copy_data(&dst->data, &src->data);
  if (rc) {
    presence_clear(dst);
    memset(dst, 0, sizeof *dst);
    return -ENOMEM;
  }
  return 0;
}

int msg_copy(sw_msg_t *dst, const sw_msg_t *src) {
  memset(dst, 0, sizeof *dst);
  dst->timestamp = src->timestamp;
  dst->action = src->action;
  dst->data.kind = src->data.kind;
  dst->data.len = src->data.len;
  int rc = copy_str(&dst->id, src->id) || copy_str(&dst->client_id, src->client_id) ||
           copy_str(&dst->connection_id, src->connection_id) ||
           copy_str(&dst->connection_key, src->connection_key) || copy_str(&dst->name, src->name) ||
           copy_str(&dst->encoding, src->encoding) || copy_str(&dst->serial, src->serial) ||
           copy_json(&dst->extras, src->extras) || copy_json(&dst->version, src->version) ||
           copy_json(&dst->annotations, src->annotations) ||
           copy_str(&dst->message_serial, src->message_serial) || copy_str(&dst->type, src->type);
  dst->count = src->count;
  dst->has_count = src->has_count;
  if (!rc && src->data.kind != SW_DATA_NONE) {
    /* bytes is NUL-terminated even for binary data. */
    dst->data.bytes = malloc(src->data.len + 1);
    if (dst->data.bytes) {
      if (src->data.len) memcpy(dst->data.bytes, src->data.bytes, src->data.len);
      dst->data.bytes[src->data.len] = '\0';
    } else {
      rc = 1;
    }
  }
  if (rc) {
    msg_clear(dst);
    memset(dst, 0, sizeof *dst);
    return -ENOMEM;
  }
  return 0;
}

size_t msg_size(const sw_msg_t *m) {
  size_t n = m->data.len;
  if (m->name) n += strlen(m->name);
  if (m->client_id) n += strlen(m->client_id);
  /* json_dumpb with no buffer only measures. */
  if (m->extras) n += json_dumpb(m->extras, NULL, 0, JSON_COMPACT);
  return n;
}
