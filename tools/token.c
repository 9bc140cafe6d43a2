/* token.c: `switchboard token`, an app server's token endpoint from the
 * shell: prints an Ably JWT or a signed TokenRequest made with a key.
 *
 *   token=$(switchboard token --key "$KEY" --client-id alice --ttl 600 \
 *           --capability '{"chat:*":["publish","subscribe"]}')
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard.h"
#include "tools/tools.h"

#define MAX_TTL_SECONDS (24 * 3600) /* what the server accepts (docs/auth.md) */

static void token_usage(FILE *out) {
  fprintf(out,
          "usage: switchboard token --key KEY [--client-id ID] [--capability JSON] [--ttl SECONDS]\n"
          "                         [--revocation-key K] [--format jwt|token-request]\n"
          "\n"
          "Prints a token signed with KEY (appId.keyId:secret; default $SWITCHBOARD_KEY):\n"
          "  --format jwt            an Ably JWT, HS256, kid = keyName (default)\n"
          "  --format token-request  a signed TokenRequest (JSON) for POST /keys/{keyName}/requestToken\n"
          "  --client-id ID          bind the token to ID (\"*\": any clientId)\n"
          "  --capability JSON       e.g. '{\"chat:*\":[\"publish\",\"subscribe\"]}' (default: the key's)\n"
          "  --ttl SECONDS           lifetime, 1..%d (default 3600)\n"
          "  --revocation-key K      x-ably-revocation-key claim (JWT only)\n",
          MAX_TTL_SECONDS);
}

static int fail(const char *fmt, const char *arg) {
  fprintf(stderr, "switchboard token: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n");
  return 2;
}

int tool_token(int argc, char **argv) {
  const char *key = getenv("SWITCHBOARD_KEY"), *format = "jwt";
  sw_token_params_t p = {0};
  for (int i = 0; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      token_usage(stdout);
      return 0;
    }
    if (i + 1 >= argc) {
      token_usage(stderr);
      return fail("%s needs a value (or is unknown)", a);
    }
    const char *v = argv[++i];
    if (strcmp(a, "--key") == 0) key = v;
    else if (strcmp(a, "--client-id") == 0) p.client_id = v;
    else if (strcmp(a, "--capability") == 0) p.capability = v;
    else if (strcmp(a, "--revocation-key") == 0) p.revocation_key = v;
    else if (strcmp(a, "--format") == 0) format = v;
    else if (strcmp(a, "--ttl") == 0) {
      char *end;
      errno = 0;
      long long ttl = strtoll(v, &end, 10);
      if (errno || end == v || *end || ttl < 1 || ttl > MAX_TTL_SECONDS)
        return fail("--ttl must be a whole number of seconds between 1 and 86400, not '%s'", v);
      p.ttl_ms = ttl * 1000;
    } else {
      token_usage(stderr);
      return fail("unknown option %s", a);
    }
  }
  if (!key || !*key) return fail("%s", "--key is required (or set SWITCHBOARD_KEY)");
  bool jwt = strcmp(format, "jwt") == 0;
  if (!jwt && strcmp(format, "token-request") != 0) return fail("--format must be jwt or token-request, not '%s'", format);
  if (!jwt && p.revocation_key) return fail("%s", "--revocation-key is a JWT claim: use it with --format jwt");
  if (p.revocation_key && !*p.revocation_key) return fail("%s", "--revocation-key must not be empty");

  char *out = NULL;
  sw_errinfo_t err = {0};
  int rc = jwt ? sw_jwt_create(key, &p, &out, &err) : sw_token_request_create(key, &p, &out, &err);
  if (rc) {
    fprintf(stderr, "switchboard token: %s (%d)\n", err.code ? err.message : sw_strerror(rc), err.code);
    return rc == SW_EINVAL ? 2 : 1;
  }
  printf("%s\n", out);
  free(out);
  return fflush(stdout) == 0 ? 0 : 1;
}
