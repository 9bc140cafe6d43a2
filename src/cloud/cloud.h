/* cloud.h: the Assistant Cloud HTTP API (docs/identity.md, "Assistant
 * Cloud"): for each app, http(s)://HOST:PORT/cloud/{appId} is a baseUrl for
 * the npm `assistant-cloud` client. Threads and messages live in the store
 * (store.h, "Assistant Cloud"); every request acts in one workspace, taken
 * from its credential; a thread is also the realtime channel
 * cloud:{workspace}:{threadId}.
 *
 * Routed from server_on_request for paths under /cloud/. */
#ifndef SW_CLOUD_CLOUD_H
#define SW_CLOUD_CLOUD_H

#include <jansson.h>

#include "core/app.h"
#include "proto/errors.h"

struct sw_sock;
struct sw_http_req;
struct sw_server;

/* Handles one HTTP request whose path starts with "/cloud/". */
void cloud_handle(struct sw_sock *s, const struct sw_http_req *req);

/* Checks an app spec's "anonymous" object (NULL: anonymous users off),
 * against the app's keys. 0, or -1 with err 40000 naming the problem. */
int cloud_anon_check(const json_t *anonymous, const sw_app_t *app, sw_error_t *err);

/* Frees the per-app anonymous-endpoint rate limit tables (server_free). */
void cloud_free(struct sw_server *srv);

#endif
