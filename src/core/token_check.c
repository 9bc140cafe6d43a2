/* token_check.c: `switchboard token --check`, "why was this token refused?"
 * from the shell (docs/identity.md, "Checking a set-up").
 *
 * Loads the apps of a config file exactly as `serve` does (identity
 * providers included, so a bad provider is reported with the same message),
 * loads the providers' keys (fetching remote ones, up to a deadline), then
 * runs the token through principal_from_token, the function every
 * connection and REST request uses, and prints either what the token grants
 * or the exact Ably error the server would answer with. */
#include "core/token_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#include "auth/cap_cache.h"
#include "auth/jws.h"
#include "core/config.h"
#include "core/principal.h"
#include "core/server.h"
#include "identity/identity.h"
#include "util/clock.h"

#define LOAD_DEADLINE_MS 20000
#define MAX_TOKEN 65536

static void check_usage(FILE *out) {
  fprintf(out,
          "usage: switchboard token --check --config FILE [TOKEN]\n"
          "\n"
          "Checks TOKEN (read from stdin when absent or \"-\") against the apps and identity\n"
          "providers of FILE, as the server would: prints the clientId, capability, workspace\n"
          "and expiry it grants, or the exact error (code, status, reason) the server answers.\n"
          "Remote JWK Sets are fetched first (up to %d s); Ably tokens (sbt1...) cannot be\n"
          "checked here, as their key is in the server's data directory. Exit status: 0\n"
          "accepted, 1 refused or the config was refused, 2 usage.\n",
          LOAD_DEADLINE_MS / 1000);
}

/* Every provider has keys or has failed at least once. */
static bool providers_settled(const sw_apps_t *apps) {
  for (size_t i = 0; i < apps->n; i++)
    for (size_t j = 0; j < apps->apps[i]->n_idps; j++) {
      sw_idp_status_t st;
      identity_status(apps->apps[i]->idps[j], &st);
      if (!st.has_keys && !st.last_error[0] && apps->apps[i]->idps[j]->source != SW_IDP_SRC_SECRET) return false;
    }
  return true;
}

static void on_wake(uv_timer_t *t) { (void)t; }

static void print_providers(const sw_apps_t *apps) {
  for (size_t i = 0; i < apps->n; i++)
    for (size_t j = 0; j < apps->apps[i]->n_idps; j++) {
      const sw_idp_t *p = apps->apps[i]->idps[j];
      sw_idp_status_t st;
      identity_status(p, &st);
      printf("provider %s/%s  issuer %s: ", p->app_id, p->id, p->issuer);
      if (p->source == SW_IDP_SRC_SECRET) printf("shared secret (HMAC)\n");
      else if (st.has_keys) printf("%zu key(s) loaded%s%s\n", st.n_keys, st.last_error[0] ? "; last refresh failed: " : "", st.last_error);
      else printf("NO KEYS: %s\n", st.last_error[0] ? st.last_error : "not loaded yet");
    }
}

/* What the token says about itself, before anything is verified. */
static void print_unverified(const char *tok, size_t n) {
  sw_jws_t j;
  sw_error_t err;
  if (jws_decode(tok, n, MAX_TOKEN, &j, &err)) {
    printf("token: not a JWT (%s)\n", err.message);
    return;
  }
  char *h = json_dumps(j.header, JSON_COMPACT | JSON_SORT_KEYS);
  printf("header (unverified): %s\n", h ? h : "?");
  free(h);
  const char *names[] = {"iss", "aud", "sub", "exp", "nbf", "iat"};
  json_t *show = json_object();
  for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
    json_t *v = json_object_get(j.claims, names[i]);
    if (v) json_object_set(show, names[i], v);
  }
  char *c = json_dumps(show, JSON_COMPACT);
  printf("claims (unverified): %s\n", c ? c : "?");
  free(c);
  json_decref(show);
  json_t *exp = json_object_get(j.claims, "exp");
  if (json_is_number(exp)) {
    double left = json_number_value(exp) - (double)clock_now_ms() / 1000.0;
    if (left >= 0) printf("exp is in %.0f s\n", left);
    else printf("exp was %.0f s ago\n", -left);
  }
  jws_clear(&j);
}

static char *read_token(const char *arg) {
  if (arg && strcmp(arg, "-") != 0) return strdup(arg);
  char *buf = malloc(MAX_TOKEN + 1);
  size_t n = buf ? fread(buf, 1, MAX_TOKEN, stdin) : 0;
  if (!buf) return NULL;
  while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) n--;
  buf[n] = '\0';
  return buf;
}

static int load_apps(sw_server_t *srv) {
  size_t i;
  json_t *spec;
  json_array_foreach(srv->cfg->apps, i, spec) {
    sw_error_t err = {0};
    sw_app_t *a = app_from_spec(spec, false, &err);
    if (!a || apps_add(&srv->apps, a, &err)) {
      printf("config app %zu refused: %d (%d) %s\n", i, err.code, err.status, err.message);
      app_free(a);
      return -1;
    }
  }
  return 0;
}

int token_check_main(int argc, char **argv) {
  const char *config = NULL, *tokarg = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--check") == 0) continue;
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      check_usage(stdout);
      return 0;
    }
    if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) config = argv[++i];
    else if (!tokarg && (argv[i][0] != '-' || strcmp(argv[i], "-") == 0)) tokarg = argv[i];
    else {
      check_usage(stderr);
      return 2;
    }
  }
  if (!config) {
    check_usage(stderr);
    return 2;
  }
  sw_config_t cfg;
  config_defaults(&cfg);
  char cerr[512];
  if (config_load_file(&cfg, config, cerr, sizeof cerr)) {
    printf("config refused: %s\n", cerr);
    config_free(&cfg);
    return 1;
  }
  char *tok = read_token(tokarg);
  uv_loop_t loop;
  uv_loop_init(&loop);
  sw_server_t srv;
  memset(&srv, 0, sizeof srv);
  srv.loop = &loop;
  srv.cfg = &cfg;
  srv.identity = identity_new(&loop);
  srv.apps.identity = srv.identity;
  srv.cap_cache = cap_cache_new(64);
  int rc = 1;
  if (!tok || !srv.identity || !srv.cap_cache) {
    printf("out of memory\n");
    goto done;
  }
  if (load_apps(&srv)) goto done;
  uv_timer_t wake;
  uv_timer_init(&loop, &wake);
  uv_timer_start(&wake, on_wake, 50, 50);
  int64_t until = clock_now_ms() + LOAD_DEADLINE_MS;
  while (!providers_settled(&srv.apps) && clock_now_ms() < until) uv_run(&loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&wake, NULL);
  print_providers(&srv.apps);
  print_unverified(tok, strlen(tok));
  sw_principal_t p;
  sw_error_t err = {0};
  if (principal_from_token(&srv, tok, strlen(tok), &p, &err)) {
    printf("REFUSED: %d (%d) %s\n", err.code, err.status, err.message);
    goto done;
  }
  char *cap = cap_canonical(p.cap);
  static const char *const kinds[] = {"?", "key", "Ably token", "Ably JWT", "identity provider token"};
  printf("ACCEPTED as %s", kinds[p.kind <= SW_CRED_PROVIDER ? p.kind : 0]);
  if (p.idp) printf(" of provider %s/%s", p.idp->app_id, p.idp->id);
  printf("\n  app          %s\n  key          %s\n  clientId     %s\n  capability   %s\n", p.app->id,
         p.key ? p.key->name : "(none: the provider's capability alone)", p.client_id ? p.client_id : "(none)",
         cap ? cap : "?");
  if (p.workspace) printf("  workspace    %s\n", p.workspace);
  if (p.expires) printf("  expires in   %lld s\n", (long long)((p.expires - clock_now_ms()) / 1000));
  free(cap);
  principal_clear(&p);
  rc = 0;
done:
  identity_close(srv.identity);
  uv_run(&loop, UV_RUN_DEFAULT);
  identity_free(srv.identity);
  apps_free(&srv.apps);
  cap_cache_free(srv.cap_cache);
  uv_loop_close(&loop);
  config_free(&cfg);
  free(tok);
  return rc;
}
