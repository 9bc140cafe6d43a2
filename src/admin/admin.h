/* admin.h: the admin API: POST /apps (the body of Ably's sandbox app
 * set-up), GET /apps/{id} and DELETE /apps/{id}. Open without credentials
 * only with --sandbox; otherwise it needs "Authorization: Bearer <adminKey>"
 * from the config. */
#ifndef SW_ADMIN_ADMIN_H
#define SW_ADMIN_ADMIN_H

#include <stdbool.h>

typedef struct sw_sock sw_sock_t;
typedef struct sw_server sw_server_t;
struct sw_http_req;

void admin_handle(sw_sock_t *s, const struct sw_http_req *req);

/* The admin credential rule, shared with GET /metrics (root/health.c):
 * true with --sandbox, else only for "Authorization: Bearer <adminKey>"
 * (compared in constant time; never without a configured adminKey). */
bool admin_authorized(const sw_server_t *srv, const struct sw_http_req *req);

#endif
