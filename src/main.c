/* switchboard: an Ably-protocol-compatible realtime server. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "admin/apps_cmd.h"
#include "core/config.h"
#include "core/server.h"
#include "core/token_check.h"
#include "root/root.h"
#include "util/hash.h"
#include "util/log.h"
#ifdef SW_HAVE_TOOLS
#include "tools/tools.h"
#endif

static void usage(FILE *out) {
  fprintf(out,
          "usage: switchboard serve [--config FILE] [--listen HOST:PORT] [--data DIR | --memory]\n"
          "                         [--sandbox] [--verbose] [--log-format text|json]\n"
          "                         [--metrics-listen HOST:PORT] [--tls-cert FILE --tls-key FILE]\n"
          "                         [--redis URL]\n"
          "       switchboard apps [--config FILE] [--data DIR]   (stored apps and their keys)\n"
#ifdef SW_HAVE_TOOLS
          "       switchboard token --key KEY [--client-id ID] [--capability JSON] [--ttl SECONDS]\n"
          "                         [--revocation-key K] [--format jwt|token-request]\n"
          "       switchboard pub|sub ...   (switchboard pub --help)\n"
          "       switchboard bench ...     (switchboard bench --help)\n"
#endif
          "       switchboard token --check --config FILE [TOKEN]   (why is a token refused?)\n"
          "       switchboard --help | --version\n"
          "\n"
          "  --config FILE       JSON configuration (apps, keys, namespaces, limits; see README)\n"
          "  --listen HOST:PORT  address to listen on (default 127.0.0.1:8080; port 0 picks one)\n"
          "  --data DIR          SQLite data directory (default ./data)\n"
          "  --memory            keep everything in memory (nothing survives a restart)\n"
          "  --sandbox           open the admin API (POST /apps) without credentials, for\n"
          "                      local development and test suites\n"
          "  --verbose           debug logging\n"
          "  --log-format F      text (default) or json: one JSON object a line on stderr\n"
          "  --metrics-listen HOST:PORT  a second listener serving only /metrics, /healthz and\n"
          "                      /readyz, without credentials (port 0 picks one)\n"
          "  --tls-cert FILE     serve HTTPS and WSS: the certificate chain (PEM; SIGHUP reloads it)\n"
          "  --tls-key FILE      its private key (PEM)\n"
          "  --redis URL         a node of a cluster sharing channels, apps, keys, revocations,\n"
          "                      TokenRequest nonces and large tokens through Redis:\n"
          "                      redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH[?db=N]\n"
          "                      (docs/cluster.md)\n");
}

static int serve(int argc, char **argv) {
  sw_config_t cfg;
  config_defaults(&cfg);
  const char *listen = NULL, *data = NULL, *metrics_listen = NULL, *tls_cert = NULL, *tls_key = NULL, *redis = NULL;
  bool memory = false, sandbox = false;
  int log_format = -1;
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    char err[512];
    if (strcmp(a, "--config") == 0 && val) {
      if (config_load_file(&cfg, val, err, sizeof err)) {
        fprintf(stderr, "switchboard: %s\n", err);
        config_free(&cfg);
        return 2;
      }
      i++;
    } else if (strcmp(a, "--listen") == 0 && val) {
      listen = val, i++;
    } else if (strcmp(a, "--metrics-listen") == 0 && val) {
      metrics_listen = val, i++;
    } else if (strcmp(a, "--tls-cert") == 0 && val) {
      tls_cert = val, i++;
    } else if (strcmp(a, "--tls-key") == 0 && val) {
      tls_key = val, i++;
    } else if (strcmp(a, "--redis") == 0 && val) {
      redis = val, i++;
    } else if (strcmp(a, "--data") == 0 && val) {
      data = val, i++;
    } else if (strcmp(a, "--memory") == 0) {
      memory = true;
    } else if (strcmp(a, "--sandbox") == 0) {
      sandbox = true;
    } else if (strcmp(a, "--verbose") == 0) {
      log_set_level(SW_LOG_DEBUG);
    } else if (strcmp(a, "--log-format") == 0 && val && (log_format = log_format_parse(val)) >= 0) {
      i++;
    } else {
      fprintf(stderr, "switchboard: unknown or incomplete option %s\n", a);
      usage(stderr);
      config_free(&cfg);
      return 2;
    }
  }
  /* Command-line flags override the config file. */
  if (listen && config_set_listen(&cfg, listen)) {
    fprintf(stderr, "switchboard: bad --listen %s (want HOST:PORT)\n", listen);
    config_free(&cfg);
    return 2;
  }
  if (metrics_listen && config_set_metrics_listen(&cfg, metrics_listen)) {
    fprintf(stderr, "switchboard: bad --metrics-listen %s (want HOST:PORT)\n", metrics_listen);
    config_free(&cfg);
    return 2;
  }
  if (data) {
    free(cfg.data_dir);
    cfg.data_dir = strdup(data);
  }
  if (memory) cfg.memory = true;
  if (redis) {
    /* The flag replaces whatever the file said about where Redis is. */
    free(cfg.redis_host);
    free(cfg.redis_socket);
    cfg.redis_host = cfg.redis_socket = NULL;
    free(cfg.redis_url);
    cfg.redis_url = strdup(redis);
  }
  config_set_tls(&cfg, tls_cert, tls_key);
  char cerr[256];
  if (config_check(&cfg, cerr, sizeof cerr)) {
    fprintf(stderr, "switchboard: %s\n", cerr);
    config_free(&cfg);
    return 2;
  }
  log_set_format(log_format >= 0 ? log_format : cfg.log_format);
  if (sandbox) cfg.sandbox = true;

  /* Writes to a closed socket must fail with EPIPE, not kill the process. */
  signal(SIGPIPE, SIG_IGN);
  /* Every connection is a descriptor: take the hard limit, not the soft one. */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  uv_loop_t *loop = uv_default_loop();
  sw_server_t srv;
  int port = 0;
  int rc = root_server_start(&srv, loop, &cfg, &port);
  if (rc == 0) {
    printf("listening on %s://%s:%d\n", cfg.tls_cert ? "https" : "http", cfg.host, port);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
  }
  /* A failed start has closed what it opened already (message on stderr). */
  server_free(&srv);
  uv_loop_close(loop);
  config_free(&cfg);
  return rc ? 1 : 0;
}

int main(int argc, char **argv) {
  /* Before any table is made: the hash tables' key (util/hash.h). */
  if (sw_hash_init()) {
    fprintf(stderr, "switchboard: no random source for the hash tables' key\n");
    return 1;
  }
  root_init(); /* before any command makes an app */
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "--version") == 0) {
    printf("switchboard %s\n", SW_VERSION);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "serve") == 0) return serve(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "apps") == 0) return apps_command(argc - 2, argv + 2);
  if (argc >= 3 && strcmp(argv[1], "token") == 0)
    for (int i = 2; i < argc; i++)
      if (strcmp(argv[i], "--check") == 0) return token_check_main(argc - 2, argv + 2);
#ifdef SW_HAVE_TOOLS
  if (argc >= 2 && strcmp(argv[1], "token") == 0) return tool_token(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "pub") == 0) return tool_pub(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "sub") == 0) return tool_sub(argc - 2, argv + 2);
  if (argc >= 2 && strcmp(argv[1], "bench") == 0) return tool_bench(argc - 2, argv + 2);
#endif
  usage(stderr);
  return 2;
}
