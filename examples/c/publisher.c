/* publisher.c: publishes each argument to a channel and exits once all are
 * acknowledged.   publisher KEY CHANNEL MESSAGE...
 * Server: 127.0.0.1:8080, or the port in $SWITCHBOARD_PORT.
 * Build: cc publisher.c $(pkg-config --cflags --libs switchboard) */
#include <stdio.h>
#include <stdlib.h>
#include <switchboard.h>

typedef struct { int pending, failed; } state_t;

static void on_ack(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials, size_t n, void *ud) {
  state_t *s = ud;
  if (err) s->failed = fprintf(stderr, "refused: %d %s\n", err->code, err->message);
  else printf("acknowledged, serial %s\n", n && serials[0] ? serials[0] : "-");
  if (--s->pending == 0) sw_client_close(sw_channel_client(ch)); /* then sw_client_run returns */
}

int main(int argc, char **argv) {
  if (argc < 4) return fprintf(stderr, "usage: %s KEY CHANNEL MESSAGE...\n", argv[0]), 2;
  sw_options_t o;
  sw_options_init(&o);
  o.key = argv[1];
  if (getenv("SWITCHBOARD_PORT")) o.port = atoi(getenv("SWITCHBOARD_PORT"));
  sw_client_t *c;
  sw_errinfo_t err;
  if (sw_client_new(&o, &c, &err)) return fprintf(stderr, "%s\n", err.message), 2;
  state_t s = {0};
  sw_channel_t *ch = sw_client_channel(c, argv[2]);
  for (int i = 3; i < argc; i++) /* queued until connected, then sent in order */
    if (sw_channel_publish(ch, NULL, argv[i], on_ack, &s) == 0) s.pending++;
  sw_client_connect(c);
  sw_client_run(c);
  const sw_errinfo_t *why = sw_client_state(c) == SW_CONN_FAILED ? sw_client_error_reason(c) : NULL;
  if (why) fprintf(stderr, "connection failed: %d %s\n", why->code, why->message);
  sw_client_free(c);
  return s.failed || why ? 1 : 0;
}
