#include "core/config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

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
      .max_pending_publishes = 1000,
      .max_channels_per_connection = 200,
      .max_presence_members = 200,
      .max_presence_per_connection = 1000,
      .max_idempotency_ids = 100000,
      .max_message_id_length = 256,
      .max_token_request_nonces = 100000,
      .max_revocations = 10000,
      .max_channel_params = 16,
      .max_rewind = 100,
      .append_rollup_window = 40,
      .http_head_timeout = 10000,
      .http_body_timeout = 30000,
      .http_idle_timeout = 30000,
      .close_timeout = 30000,
      .linger_timeout = 2000,
      .linger_bytes = 4u << 20,
      .max_pending_sockets = 10000,
      .max_pending_per_ip = 1024,
      .tls_handshake_timeout = 10000,
  };
  c->auth = (sw_auth_config_t){.clock_skew_ms = 30000, .basic = SW_BASIC_LOOPBACK, .reauth_margin_ms = 30000};
}

static int parse_hostport(const char *hostport, char *host, size_t cap, int *port_out) {
  const char *colon = strrchr(hostport, ':');
  if (!colon || colon == hostport || (size_t)(colon - hostport) >= cap) return -1;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || end == colon + 1 || port < 0 || port > 65535) return -1;
  memcpy(host, hostport, (size_t)(colon - hostport));
  host[colon - hostport] = '\0';
  *port_out = (int)port;
  return 0;
}

int config_set_listen(sw_config_t *c, const char *hostport) {
  return parse_hostport(hostport, c->host, sizeof c->host, &c->port);
}

int config_set_metrics_listen(sw_config_t *c, const char *hostport) {
  if (parse_hostport(hostport, c->metrics_host, sizeof c->metrics_host, &c->metrics_port)) return -1;
  c->metrics_listen = true;
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

/* "tls": {"cert": FILE, "key": FILE} */
static int load_tls(sw_config_t *c, json_t *root, const char *path, char *err, size_t errlen) {
  json_t *t = json_object_get(root, "tls");
  if (!t) return 0;
  json_t *cert = json_object_get(t, "cert"), *key = json_object_get(t, "key");
  if (!json_is_object(t) || !json_is_string(cert) || !json_is_string(key)) {
    snprintf(err, errlen, "%s: tls must be {\"cert\": FILE, \"key\": FILE}", path);
    return -1;
  }
  config_set_tls(c, json_string_value(cert), json_string_value(key));
  return 0;
}

/* "trustedProxies": ["10.0.0.0/8", "::1", ...] */
static int load_proxies(sw_config_t *c, json_t *root, const char *path, char *err, size_t errlen) {
  json_t *l = json_object_get(root, "trustedProxies");
  if (!l) return 0;
  if (!json_is_array(l) || json_array_size(l) > SW_MAX_TRUSTED_PROXIES) {
    snprintf(err, errlen, "%s: trustedProxies must be an array of at most %d addresses or CIDR blocks", path,
             SW_MAX_TRUSTED_PROXIES);
    return -1;
  }
  size_t n = json_array_size(l);
  sw_cidr_t *list = n ? calloc(n, sizeof *list) : NULL;
  if (n && !list) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    const char *s = json_string_value(json_array_get(l, i));
    if (!s || cidr_parse(s, strlen(s), &list[i])) {
      snprintf(err, errlen, "%s: trustedProxies[%zu]: not an IP address or CIDR block (as 10.0.0.0/8 or ::1): %.64s",
               path, i, s ? s : "(not a string)");
      free(list);
      return -1;
    }
  }
  free(c->trusted_proxies);
  c->trusted_proxies = list;
  c->n_trusted_proxies = n;
  return 0;
}

static void set_str(char **dst, const char *v) {
  free(*dst);
  *dst = v ? strdup(v) : NULL;
}

bool config_has_redis(const sw_config_t *c) {
  return c->redis_url || c->redis_host || c->redis_socket;
}

/* An optional integer member of "redis": lo..hi, or an error. */
static int redis_int(json_t *r, const char *name, int64_t lo, int64_t hi, int64_t *dst, const char *path, char *err,
                     size_t errlen) {
  json_t *v = json_object_get(r, name);
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
    snprintf(err, errlen, "%s: redis.%s must be an integer from %lld to %lld", path, name, (long long)lo,
             (long long)hi);
    return -1;
  }
  *dst = json_integer_value(v);
  return 0;
}

/* "redis": a URL, or an object (url, or host/port/db/user/password, or
 * socket; timeouts and maxPending). Only the shape is checked here: the
 * root parses the URL (it knows Redis; core/ does not). */
static int load_redis(sw_config_t *c, json_t *root, const char *path, char *err, size_t errlen) {
  json_t *r = json_object_get(root, "redis");
  if (!r) return 0;
  if (json_is_string(r)) {
    set_str(&c->redis_url, json_string_value(r));
    return 0;
  }
  if (!json_is_object(r)) {
    snprintf(err, errlen, "%s: redis must be a URL (redis://HOST:PORT/DB, unix:///PATH) or an object", path);
    return -1;
  }
  static const char *const known[] = {"url", "host", "port", "db", "user", "password", "socket",
                                      "connectTimeout", "commandTimeout", "maxPending"};
  const char *k;
  json_t *v;
  json_object_foreach(r, k, v) {
    size_t i = 0;
    while (i < sizeof known / sizeof known[0] && strcmp(k, known[i])) i++;
    if (strcmp(k, "tls") == 0) {
      snprintf(err, errlen,
               "%s: redis.tls: TLS to Redis is not supported (this build's hiredis, 0.14, has none); reach Redis "
               "over a private network, a Unix socket or a TLS tunnel",
               path);
      return -1;
    }
    if (i == sizeof known / sizeof known[0]) {
      snprintf(err, errlen, "%s: redis.%.64s is not a setting (url, host, port, db, user, password, socket, "
               "connectTimeout, commandTimeout, maxPending)", path, k);
      return -1;
    }
    if (i <= 6 && i != 2 && i != 3 && !json_is_string(v)) {
      snprintf(err, errlen, "%s: redis.%s must be a string", path, k);
      return -1;
    }
  }
  int64_t port = 0, db = 0;
  if (redis_int(r, "port", 1, 65535, &port, path, err, errlen) ||
      redis_int(r, "db", 0, 99999999, &db, path, err, errlen) ||
      redis_int(r, "connectTimeout", 1, 600000, &c->redis_connect_timeout_ms, path, err, errlen) ||
      redis_int(r, "commandTimeout", 1, 600000, &c->redis_command_timeout_ms, path, err, errlen) ||
      redis_int(r, "maxPending", 1, 10000000, &c->redis_max_pending, path, err, errlen))
    return -1;
  const char *url = json_string_value(json_object_get(r, "url"));
  const char *host = json_string_value(json_object_get(r, "host"));
  const char *sock = json_string_value(json_object_get(r, "socket"));
  if (!!url + !!host + !!sock != 1) {
    snprintf(err, errlen, "%s: redis needs exactly one of url, host or socket", path);
    return -1;
  }
  set_str(&c->redis_url, url);
  set_str(&c->redis_host, host);
  set_str(&c->redis_socket, sock);
  set_str(&c->redis_user, json_string_value(json_object_get(r, "user")));
  set_str(&c->redis_password, json_string_value(json_object_get(r, "password")));
  c->redis_port = (int)port;
  c->redis_db = (int)db;
  return 0;
}

void config_set_tls(sw_config_t *c, const char *cert, const char *key) {
  if (cert) {
    free(c->tls_cert);
    c->tls_cert = strdup(cert);
  }
  if (key) {
    free(c->tls_key);
    c->tls_key = strdup(key);
  }
}

int config_check(const sw_config_t *c, char *err, size_t errlen) {
  if (!c->tls_cert != !c->tls_key) {
    snprintf(err, errlen, "TLS needs both a certificate (--tls-cert, tls.cert) and a key (--tls-key, tls.key)");
    return -1;
  }
  return 0;
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
  if ((s = json_string_value(json_object_get(root, "metricsListen"))) && config_set_metrics_listen(c, s)) {
    snprintf(err, errlen, "%s: bad metricsListen address %s", path, s);
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
  if ((s = json_string_value(json_object_get(root, "logFormat"))) && (c->log_format = log_format_parse(s)) < 0) {
    snprintf(err, errlen, "%s: logFormat must be text or json", path);
    json_decref(root);
    return -1;
  }
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
    limit(l, "maxPendingPublishes", &c->limits.max_pending_publishes);
    limit(l, "maxChannelsPerConnection", &c->limits.max_channels_per_connection);
    limit(l, "maxPresenceMembers", &c->limits.max_presence_members);
    limit(l, "maxPresenceMembersPerConnection", &c->limits.max_presence_per_connection);
    limit(l, "maxIdempotencyIds", &c->limits.max_idempotency_ids);
    limit(l, "maxMessageIdLength", &c->limits.max_message_id_length);
    limit(l, "maxTokenRequestNonces", &c->limits.max_token_request_nonces);
    limit(l, "maxRevocations", &c->limits.max_revocations);
    limit(l, "maxChannelParams", &c->limits.max_channel_params);
    limit(l, "maxRewind", &c->limits.max_rewind);
    /* 0 (no rollup) is a value here; more than Ably's 500 is 500. */
    json_t *rw = json_object_get(l, "appendRollupWindow");
    if (json_is_integer(rw) && json_integer_value(rw) >= 0)
      c->limits.append_rollup_window = json_integer_value(rw) > 500 ? 500 : json_integer_value(rw);
    /* Sockets before they are useful: deadlines and budgets. */
    limit(l, "httpHeadTimeout", &c->limits.http_head_timeout);
    limit(l, "httpBodyTimeout", &c->limits.http_body_timeout);
    limit(l, "httpIdleTimeout", &c->limits.http_idle_timeout);
    limit(l, "closeTimeout", &c->limits.close_timeout);
    limit(l, "lingerTimeout", &c->limits.linger_timeout);
    limit_size(l, "lingerBytes", &c->limits.linger_bytes, false);
    limit_size(l, "maxPendingSockets", &c->limits.max_pending_sockets, false);
    limit_size(l, "maxPendingPerIp", &c->limits.max_pending_per_ip, true);
    limit(l, "tlsHandshakeTimeout", &c->limits.tls_handshake_timeout);
  }
  if (load_tls(c, root, path, err, errlen) || load_proxies(c, root, path, err, errlen) ||
      load_redis(c, root, path, err, errlen)) {
    json_decref(root);
    return -1;
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
  free(c->tls_cert);
  free(c->tls_key);
  free(c->trusted_proxies);
  free(c->redis_url);
  free(c->redis_host);
  free(c->redis_socket);
  free(c->redis_user);
  if (c->redis_password) memset(c->redis_password, 0, strlen(c->redis_password));
  free(c->redis_password);
  json_decref(c->apps);
  memset(c, 0, sizeof *c);
}
