/* apps_cmd.c: `switchboard apps`, see apps_cmd.h.
 *
 * Output, one block per app, in app id order:
 *   app dev
 *     key dev.AbCdEf:SECRET capability {"[*]*":["*"]}
 *     namespace conversations {"mutableMessages":true,"persisted":true}
 * A key line ends with " revocableTokens" when the key has that rule. */
#include "admin/apps_cmd.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/app.h"
#include "core/config.h"

/* Where the server keeps app specs: store_kv_put(store, "apps", id, spec) in
 * server_persist_app (core/server.c), in the kv table of store_sqlite.c. */
#define APPS_QUERY "SELECT key, value FROM kv WHERE ns = 'apps' ORDER BY key"

static void usage(FILE *out) {
  fprintf(out, "usage: switchboard apps [--config FILE] [--data DIR]\n"
               "  lists the apps stored in DIR (default ./data, or the config's \"data\") with\n"
               "  their keys (appId.keyId:secret), capabilities and namespace rules\n");
}

/* Prints one stored app; returns 0, or -1 when its spec does not load. */
static int print_app(const char *id, const char *value) {
  json_error_t jerr;
  json_t *spec = json_loads(value, 0, &jerr);
  sw_error_t err = {0};
  sw_app_t *a = spec ? app_from_spec(spec, false, &err) : NULL;
  if (!a) {
    fprintf(stderr, "switchboard: stored app %s: %s\n", id, spec ? err.message : jerr.text);
    json_decref(spec);
    return -1;
  }
  printf("app %s\n", a->id);
  for (size_t i = 0; i < a->n_keys; i++) {
    const sw_key_t *k = &a->keys[i];
    printf("  key %s:%s capability %s%s\n", k->name, k->secret, k->capability, k->revocable ? " revocableTokens" : "");
  }
  size_t i;
  json_t *ns;
  json_array_foreach(json_object_get(spec, "namespaces"), i, ns) {
    /* The rules as written, without the id. */
    json_t *rules = json_deep_copy(ns);
    json_object_del(rules, "id");
    char *text = json_dumps(rules, JSON_COMPACT | JSON_PRESERVE_ORDER);
    printf("  namespace %s %s\n", json_string_value(json_object_get(ns, "id")), text ? text : "{}");
    free(text);
    json_decref(rules);
  }
  app_free(a);
  json_decref(spec);
  return 0;
}

/* Lists the apps of the database at path. Returns the exit status. */
static int list_apps(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "switchboard: %s does not exist: no server has run with this data directory\n", path);
    return 1;
  }
  sqlite3 *db = NULL;
  sqlite3_stmt *q = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
  if (rc == SQLITE_OK) {
    sqlite3_busy_timeout(db, 5000); /* a running server may hold a write lock briefly */
    rc = sqlite3_prepare_v2(db, APPS_QUERY, -1, &q, NULL);
  }
  int n = 0, bad = 0;
  while (rc == SQLITE_OK && (rc = sqlite3_step(q)) == SQLITE_ROW) {
    bad |= print_app((const char *)sqlite3_column_text(q, 0), (const char *)sqlite3_column_text(q, 1));
    n++;
    rc = SQLITE_OK;
  }
  int status = 0;
  if (rc != SQLITE_DONE) {
    fprintf(stderr, "switchboard: cannot read %s: %s\n", path, db ? sqlite3_errmsg(db) : "out of memory");
    status = 1;
  } else if (n == 0) {
    fprintf(stderr, "switchboard: no apps stored in %s (apps of a config file are not stored)\n", path);
  }
  sqlite3_finalize(q);
  sqlite3_close(db);
  return status ? status : bad ? 1 : 0;
}

int apps_command(int argc, char **argv) {
  sw_config_t cfg;
  config_defaults(&cfg);
  const char *data = NULL;
  for (int i = 0; i < argc; i++) {
    const char *val = i + 1 < argc ? argv[i + 1] : NULL;
    char err[512];
    if (strcmp(argv[i], "--data") == 0 && val) {
      data = val, i++;
    } else if (strcmp(argv[i], "--config") == 0 && val) {
      if (config_load_file(&cfg, val, err, sizeof err)) {
        fprintf(stderr, "switchboard: %s\n", err);
        config_free(&cfg);
        return 2;
      }
      i++;
    } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      usage(stdout);
      config_free(&cfg);
      return 0;
    } else {
      fprintf(stderr, "switchboard: unknown or incomplete option %s\n", argv[i]);
      usage(stderr);
      config_free(&cfg);
      return 2;
    }
  }
  if (!data) data = cfg.data_dir ? cfg.data_dir : "./data";
  char path[4096];
  int rc;
  if ((size_t)snprintf(path, sizeof path, "%s/switchboard.db", data) >= sizeof path) {
    fprintf(stderr, "switchboard: data directory path too long\n");
    rc = 2;
  } else {
    rc = list_apps(path);
  }
  config_free(&cfg);
  return rc;
}
