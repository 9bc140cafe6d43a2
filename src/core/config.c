#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void config_defaults(sw_config_t *c) {
  memset(c, 0, sizeof *c);
  snprintf(c->host, sizeof c->host, "127.0.0.1");
  c->port = 8080;
  c->data_dir = strdup("./data");
  c->sync_full = true;
  c->limits = (sw_limits_t){
      .max_message_size = 65536,
      .max_frame_size = 524288,
      .max_inbound_rate = 250,
      .connection_state_ttl = 120000,
      .max_idle_interval = 15000,
      .max_outbound_bytes = 4u << 20,
      .max_connections = 100000,
      .max_http_head = 16384,
      .max_http_body = 1u << 20,
      .http_head_timeout = 10000,
      .http_body_timeout = 30000,
      .http_idle_timeout = 30000,
      .close_timeout = 30000,
      .linger_timeout = 2000,
      .linger_bytes = 4u << 20,
      .max_pending_sockets = 10000,
      .max_pending_per_ip = 1024,
  };
  c->auth = (sw_auth_config_t){.clock_skew_ms = 30000, .basic = SW_BASIC_LOOPBACK, .reauth_margin_ms = 30000};
}

int config_set_listen(sw_config_t *c, const char *hostport) {
  const char *colon = strrchr(hostport, ':');
  if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof c->host) return -1;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535) return -1;
  memcpy(c->host, hostport, (size_t)(colon - hostport));
  c->host[colon - hostport] = '\0';
  c->port = (int)port;
  return 0;
}

static void limit(json_t *l, const char *name, int64_t *dst) {
  json_t *v = json_object_get(l, name);
  if (json_is_integer(v) && json_integer_value(v) > 0) *dst = json_integer_value(v);
}

/* As limit, for a count where 0 means "off". */
static void limit_size(json_t *l, const char *name, size_t *dst, bool zero_ok) {
  json_t *v = json_object_get(l, name);
  if (json_is_integer(v) && (json_integer_value(v) > 0 || (zero_ok && json_integer_value(v) == 0)))
    *dst = (size_t)json_integer_value(v);
}

int config_load_file(sw_config_t *c, const char *path, char *err, size_t errlen) {
  json_error_t je;
  json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!root) {
    snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
    return -1;
  }
  if (!json_is_object(root)) {
    snprintf(err, errlen, "%s: the config must be a JSON object", path);
    json_decref(root);
    return -1;
  }
  const char *s;
  if ((s = json_string_value(json_object_get(root, "listen"))) && config_set_listen(c, s)) {
    snprintf(err, errlen, "%s: bad listen address %s", path, s);
    json_decref(root);
    return -1;
  }
  if ((s = json_string_value(json_object_get(root, "data")))) {
    free(c->data_dir);
    c->data_dir = strdup(s);
  }
  if ((s = json_string_value(json_object_get(root, "adminKey")))) {
    free(c->admin_key);
    c->admin_key = strdup(s);
  }
  if ((s = json_string_value(json_object_get(root, "synchronous")))) c->sync_full = strcmp(s, "normal") != 0;
  if (json_is_true(json_object_get(root, "sandbox"))) c->sandbox = true;
  json_t *l = json_object_get(root, "limits");
  if (json_is_object(l)) {
    int64_t v;
    limit(l, "maxMessageSize", &c->limits.max_message_size);
    limit(l, "maxFrameSize", &c->limits.max_frame_size);
    limit(l, "maxInboundRate", &c->limits.max_inbound_rate);
    limit(l, "connectionStateTtl", &c->limits.connection_state_ttl);
    limit(l, "maxIdleInterval", &c->limits.max_idle_interval);
    v = (int64_t)c->limits.max_outbound_bytes, limit(l, "maxOutboundBytes", &v), c->limits.max_outbound_bytes = (size_t)v;
    v = (int64_t)c->limits.max_connections, limit(l, "maxConnections", &v), c->limits.max_connections = (size_t)v;
    v = (int64_t)c->limits.max_http_body, limit(l, "maxHttpBody", &v), c->limits.max_http_body = (size_t)v;
    /* Sockets before they are useful: deadlines and budgets. */
    limit(l, "httpHeadTimeout", &c->limits.http_head_timeout);
    limit(l, "httpBodyTimeout", &c->limits.http_body_timeout);
    limit(l, "httpIdleTimeout", &c->limits.http_idle_timeout);
    limit(l, "closeTimeout", &c->limits.close_timeout);
    limit(l, "lingerTimeout", &c->limits.linger_timeout);
    limit_size(l, "lingerBytes", &c->limits.linger_bytes, false);
    limit_size(l, "maxPendingSockets", &c->limits.max_pending_sockets, false);
    limit_size(l, "maxPendingPerIp", &c->limits.max_pending_per_ip, true);
  }
  json_t *a = json_object_get(root, "auth");
  if (json_is_object(a)) {
    int64_t v = (int64_t)c->auth.max_token_len;
    limit(a, "clockSkewMs", &c->auth.clock_skew_ms);
    limit(a, "reauthMarginMs", &c->auth.reauth_margin_ms);
    limit(a, "maxTokenLength", &v), c->auth.max_token_len = (size_t)v;
    if ((s = json_string_value(json_object_get(a, "basicOverHttp")))) {
      if (strcmp(s, "allow") == 0) c->auth.basic = SW_BASIC_ALLOW;
      else if (strcmp(s, "deny") == 0) c->auth.basic = SW_BASIC_DENY;
      else if (strcmp(s, "loopback") == 0) c->auth.basic = SW_BASIC_LOOPBACK;
      else {
        snprintf(err, errlen, "%s: auth.basicOverHttp must be loopback, allow or deny", path);
        json_decref(root);
        return -1;
      }
    }
    if ((s = json_string_value(json_object_get(a, "cookie")))) {
      free(c->auth.cookie_name);
      c->auth.cookie_name = strdup(s);
    }
  }
  json_t *apps = json_object_get(root, "apps");
  if (apps) {
    if (!json_is_array(apps)) {
      snprintf(err, errlen, "%s: apps must be an array", path);
      json_decref(root);
      return -1;
    }
    json_decref(c->apps);
    c->apps = json_incref(apps);
  }
  json_decref(root);
  return 0;
}

void config_free(sw_config_t *c) {
  free(c->data_dir);
  free(c->admin_key);
  free(c->auth.cookie_name);
  json_decref(c->apps);
  memset(c, 0, sizeof *c);
}
