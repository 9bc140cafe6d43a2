/* pubsub.c: `switchboard pub` and `switchboard sub`, libswitchboard from a
 * terminal.
 *
 *   switchboard pub --port 8080 --key "$KEY" chat hello world   # two messages
 *   switchboard sub --port 8080 --key "$KEY" chat --count 2     # one JSON line each
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "switchboard.h"
#include "tools/tools.h"

typedef struct cli {
  const char *cmd;
  sw_options_t o;
  const char *channel;
  const char *name;   /* pub: message name */
  const char *rewind; /* sub: channel param */
  long long count;    /* sub: stop after this many (0: never) */
  char **msgs;
  int n_msgs;
  int outstanding;
  long long received;
  bool connected_once;
  int exit_code;
  sw_client_t *c;
  uv_signal_t sigint;
  bool sig_open;
} cli_t;

static void usage(FILE *out, const char *cmd) {
  fprintf(out,
          "usage: switchboard pub [options] CHANNEL MESSAGE...   (no MESSAGE: one per line of stdin)\n"
          "       switchboard sub [options] CHANNEL [--count N] [--rewind N]\n"
          "\n"
          "  --host HOST          server host (default 127.0.0.1)\n"
          "  --port PORT          server port (default 8080; 443 with --tls)\n"
          "  --tls                wss:// and https://, the certificate verified against the\n"
          "                       system trust store (or --ca-file) and --host\n"
          "  --ca-file PEM        with --tls: trust these CA certificates instead\n"
          "  --key KEY            API key appId.keyId:secret (default $SWITCHBOARD_KEY)\n"
          "  --token TOKEN        an Ably token or JWT instead of a key\n"
          "  --client-id ID       clientId to connect as\n"
          "  --format json|msgpack  wire format (default msgpack)\n"
          "  --name NAME          pub: message name\n"
          "  --count N            sub: exit after N messages\n"
          "  --rewind N           sub: start with the last N messages (or e.g. 30s)\n"
          "\n"
          "pub prints the serial of each message once acknowledged; sub prints one JSON\n"
          "object per message: id, name, data, encoding, clientId, connectionId,\n"
          "timestamp, serial, extras (binary data is base64 with encoding \"base64\").\n");
  (void)cmd;
}

static int bad(const cli_t *cli, const char *fmt, const char *arg) {
  fprintf(stderr, "switchboard %s: ", cli->cmd);
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  return 2;
}

/* Parses options anywhere among the arguments; the rest are positional. */
static int parse(cli_t *cli, int argc, char **argv, char ***pos, int *npos) {
  sw_options_init(&cli->o);
  cli->o.key = getenv("SWITCHBOARD_KEY");
  cli->o.realtime_request_timeout_ms = 10000;
  cli->o.disconnected_retry_ms = 2000;
  bool port_set = false;
  *pos = calloc((size_t)argc + 1, sizeof **pos);
  *npos = 0;
  if (!*pos) return 1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout, cli->cmd);
      return -1;
    }
    if (strncmp(a, "--", 2) != 0 || strcmp(a, "--") == 0) {
      if (strcmp(a, "--") == 0) {
        while (++i < argc) (*pos)[(*npos)++] = argv[i];
        break;
      }
      (*pos)[(*npos)++] = argv[i];
      continue;
    }
    if (strcmp(a, "--tls") == 0) {
      cli->o.tls = true;
      continue;
    }
    if (i + 1 >= argc) return bad(cli, "%s needs a value", a);
    const char *v = argv[++i];
    char *end;
    if (strcmp(a, "--host") == 0) cli->o.host = v;
    else if (strcmp(a, "--port") == 0) {
      long port = strtol(v, &end, 10);
      if (end == v || *end || port < 1 || port > 65535) return bad(cli, "invalid --port '%s'", v);
      cli->o.port = (int)port;
      port_set = true;
    } else if (strcmp(a, "--ca-file") == 0) cli->o.tls_ca_file = v;
    else if (strcmp(a, "--key") == 0) cli->o.key = v;
    else if (strcmp(a, "--token") == 0) cli->o.token = v;
    else if (strcmp(a, "--client-id") == 0) cli->o.client_id = v;
    else if (strcmp(a, "--name") == 0) cli->name = v;
    else if (strcmp(a, "--rewind") == 0) cli->rewind = v;
    else if (strcmp(a, "--format") == 0) {
      if (strcmp(v, "json") == 0) cli->o.format = SW_FORMAT_JSON;
      else if (strcmp(v, "msgpack") == 0) cli->o.format = SW_FORMAT_MSGPACK;
      else return bad(cli, "--format must be json or msgpack, not '%s'", v);
    } else if (strcmp(a, "--count") == 0) {
      errno = 0;
      cli->count = strtoll(v, &end, 10);
      if (errno || end == v || *end || cli->count < 1) return bad(cli, "invalid --count '%s'", v);
    } else {
      return bad(cli, "unknown option %s", a);
    }
  }
  if (cli->o.tls && !port_set) cli->o.port = 443; /* as Ably's SDKs with tls */
  if (cli->o.token) cli->o.key = NULL; /* an explicit token wins over $SWITCHBOARD_KEY */
  if (!cli->o.key && !cli->o.token) return bad(cli, "%s", "give --key or --token (or set SWITCHBOARD_KEY)");
  return 0;
}

static void print_error(const cli_t *cli, const char *what, const sw_errinfo_t *e) {
  fprintf(stderr, "switchboard %s: %s: %d %s\n", cli->cmd, what, e ? e->code : 0, e ? e->message : "");
}

static void on_sig_closed(uv_handle_t *h) {
  (void)h;
}

static void finish(cli_t *cli, int code) {
  if (code > cli->exit_code) cli->exit_code = code;
  if (cli->sig_open) {
    cli->sig_open = false;
    uv_close((uv_handle_t *)&cli->sigint, on_sig_closed);
  }
  sw_client_close(cli->c);
}

static void on_state(sw_client_t *c, const sw_state_change_t *ch, void *ud) {
  cli_t *cli = ud;
  (void)c;
  if (ch->current == SW_CONN_CONNECTED) {
    cli->connected_once = true;
  } else if (ch->current == SW_CONN_FAILED) {
    print_error(cli, "connection failed", ch->reason);
    finish(cli, 1);
  } else if ((ch->current == SW_CONN_DISCONNECTED || ch->current == SW_CONN_SUSPENDED) && !cli->connected_once &&
             ch->retry_in_ms > 0) {
    /* At a terminal, fail fast rather than retry in silence. */
    print_error(cli, "could not connect", ch->reason);
    finish(cli, 1);
  } else if (ch->current == SW_CONN_CLOSED && cli->sig_open) {
    finish(cli, 0);
  }
}

static void on_sigint(uv_signal_t *s, int signum) {
  (void)signum;
  finish(s->data, 0);
}

static int start(cli_t *cli) {
  sw_errinfo_t err = {0};
  cli->o.on_state = on_state;
  cli->o.state_ud = cli;
  int rc = sw_client_new(&cli->o, &cli->c, &err);
  if (rc) {
    fprintf(stderr, "switchboard %s: %s (%d)\n", cli->cmd, err.code ? err.message : sw_strerror(rc), err.code);
    return rc == SW_EINVAL ? 2 : 1;
  }
  uv_loop_t *loop = sw_client_loop(cli->c);
  if (uv_signal_init(loop, &cli->sigint) == 0) {
    cli->sigint.data = cli;
    cli->sig_open = true;
    uv_signal_start(&cli->sigint, on_sigint, SIGINT);
  }
  return 0;
}

static int run(cli_t *cli) {
  sw_client_connect(cli->c);
  sw_client_run(cli->c);
  sw_client_free(cli->c);
  return cli->exit_code;
}

/* ---- pub ---- */

static void on_ack(sw_channel_t *ch, const sw_errinfo_t *err, const char *const *serials, size_t n, void *ud) {
  cli_t *cli = ud;
  (void)ch;
  if (err) {
    if (!cli->exit_code) print_error(cli, "publish refused", err); /* once is enough */
    cli->exit_code = 1;
  } else {
    printf("%s\n", n && serials[0] ? serials[0] : "(duplicate)");
    fflush(stdout);
  }
  if (--cli->outstanding == 0) finish(cli, cli->exit_code);
}

static char **read_lines(int *n) {
  char **lines = NULL, *line = NULL;
  size_t cap = 0;
  ssize_t len;
  *n = 0;
  while ((len = getline(&line, &cap, stdin)) >= 0) {
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
    char **grown = realloc(lines, ((size_t)*n + 1) * sizeof *lines);
    if (!grown) break;
    lines = grown;
    if (!(lines[*n] = strdup(line))) break;
    (*n)++;
  }
  free(line);
  return lines;
}

int tool_pub(int argc, char **argv) {
  cli_t cli = {.cmd = "pub"};
  char **pos;
  int npos, rc = parse(&cli, argc, argv, &pos, &npos);
  if (rc) {
    free(pos);
    return rc < 0 ? 0 : rc;
  }
  if (npos < 1) {
    free(pos);
    usage(stderr, "pub");
    return bad(&cli, "%s", "CHANNEL is required");
  }
  cli.channel = pos[0];
  char **owned = NULL;
  if (npos > 1) {
    cli.msgs = pos + 1;
    cli.n_msgs = npos - 1;
  } else {
    owned = cli.msgs = read_lines(&cli.n_msgs);
  }
  if (cli.n_msgs == 0) {
    free(pos);
    free(owned);
    return bad(&cli, "%s", "nothing to publish");
  }
  if ((rc = start(&cli)) == 0) {
    sw_channel_t *ch = sw_client_channel(cli.c, cli.channel);
    /* Queued now, sent in order once connected. */
    for (int i = 0; ch && i < cli.n_msgs; i++)
      if (sw_channel_publish(ch, cli.name, cli.msgs[i], on_ack, &cli) == 0) cli.outstanding++;
    if (cli.outstanding == 0) {
      bad(&cli, "%s", "could not queue the messages");
      finish(&cli, 1);
    }
    rc = run(&cli);
  }
  for (int i = 0; owned && i < cli.n_msgs; i++) free(owned[i]);
  free(owned);
  free(pos);
  return rc;
}

/* ---- sub ---- */

static void set_str(json_t *o, const char *k, const char *v) {
  if (v) json_object_set_new(o, k, json_string(v));
}

static void on_message(sw_channel_t *ch, const sw_message_t *m, void *ud) {
  cli_t *cli = ud;
  (void)ch;
  json_t *o = json_object();
  set_str(o, "id", m->id);
  set_str(o, "name", m->name);
  if (m->data_type == SW_PAYLOAD_STRING) {
    json_object_set_new(o, "data", json_stringn(m->data, m->data_len));
    set_str(o, "encoding", m->encoding);
  } else if (m->data_type == SW_PAYLOAD_BINARY) {
    char *b64 = malloc(4 * ((m->data_len + 2) / 3) + 1);
    if (b64) {
      EVP_EncodeBlock((unsigned char *)b64, m->data, (int)m->data_len);
      json_object_set_new(o, "data", json_string(b64));
      free(b64);
    }
    char enc[256];
    snprintf(enc, sizeof enc, "%s%sbase64", m->encoding ? m->encoding : "", m->encoding ? "/" : "");
    json_object_set_new(o, "encoding", json_string(enc));
  }
  set_str(o, "clientId", m->client_id);
  set_str(o, "connectionId", m->connection_id);
  if (m->timestamp) json_object_set_new(o, "timestamp", json_integer(m->timestamp));
  set_str(o, "serial", m->serial);
  if (m->extras) json_object_set_new(o, "extras", json_loads(m->extras, 0, NULL));
  char *line = json_dumps(o, JSON_COMPACT);
  if (line) {
    puts(line);
    fflush(stdout);
    free(line);
  }
  json_decref(o);
  if (cli->count && ++cli->received >= cli->count) finish(cli, 0);
}

static void on_attach(sw_channel_t *ch, const sw_errinfo_t *err, void *ud) {
  cli_t *cli = ud;
  (void)ch;
  if (err) {
    /* Not again when the connection's failure was reported already. */
    if (!cli->exit_code) print_error(cli, "attach failed", err);
    finish(cli, 1);
  }
}

int tool_sub(int argc, char **argv) {
  cli_t cli = {.cmd = "sub"};
  char **pos;
  int npos, rc = parse(&cli, argc, argv, &pos, &npos);
  if (rc) {
    free(pos);
    return rc < 0 ? 0 : rc;
  }
  if (npos != 1) {
    free(pos);
    usage(stderr, "sub");
    return bad(&cli, "%s", npos ? "give exactly one CHANNEL" : "CHANNEL is required");
  }
  if (cli.name) {
    free(pos);
    return bad(&cli, "%s", "--name is for pub");
  }
  cli.channel = pos[0];
  if ((rc = start(&cli)) == 0) {
    sw_channel_t *ch = sw_client_channel(cli.c, cli.channel);
    if (!ch || (cli.rewind && sw_channel_set_param(ch, "rewind", cli.rewind)) ||
        sw_channel_subscribe(ch, NULL, on_message, &cli) < 0 || sw_channel_attach(ch, on_attach, &cli)) {
      bad(&cli, "%s", "could not subscribe");
      finish(&cli, 1);
    }
    rc = run(&cli);
  }
  free(pos);
  return rc;
}
