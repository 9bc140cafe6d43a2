/* subscriber.c: prints the messages of a channel, with a token from an auth
 * callback (here minted locally; an app would fetch one from its server).
 *   subscriber KEY CHANNEL [COUNT]
 * Server: 127.0.0.1:8080, or the port in $SWITCHBOARD_PORT.
 * Build: cc subscriber.c $(pkg-config --cflags --libs switchboard) */
#include <stdio.h>
#include <stdlib.h>
#include <switchboard.h>

static void get_token(sw_client_t *c, sw_auth_request_t *req, void *key) {
  sw_token_params_t p = {.client_id = "example", .ttl_ms = 60 * 60 * 1000};
  char *jwt = NULL;
  sw_errinfo_t err;
  if (sw_jwt_create(key, &p, &jwt, &err)) sw_auth_complete(req, NULL, &err);
  else sw_auth_complete(req, jwt, NULL); /* renewed automatically before it expires */
  free(jwt);
}

static void on_message(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  long *left = ud;
  printf("[%s] %s: %.*s\n", m->serial, m->name ? m->name : "-", (int)m->data_len,
         m->data_type == SW_PAYLOAD_STRING ? (const char *)m->data : "(binary)");
  if (--*left == 0) sw_client_close(sw_channel_client(ch));
}

int main(int argc, char **argv) {
  if (argc < 3) return fprintf(stderr, "usage: %s KEY CHANNEL [COUNT]\n", argv[0]), 2;
  long left = argc > 3 ? atol(argv[3]) : -1;
  sw_options_t o;
  sw_options_init(&o);
  o.auth_cb = get_token;
  o.auth_ud = argv[1];
  if (getenv("SWITCHBOARD_PORT")) o.port = atoi(getenv("SWITCHBOARD_PORT"));
  sw_client_t *c;
  if (sw_client_new(&o, &c, NULL)) return 2;
  sw_channel_subscribe(sw_client_channel(c, argv[2]), NULL, on_message, &left); /* attaches */
  sw_client_connect(c);
  sw_client_run(c); /* until closed or failed */
  sw_client_free(c);
  return 0;
}
