#!/usr/bin/env bash
# Ably JWT verification: switchboard (C) against Node's jsonwebtoken.verify,
# same token, same run, one core each (pinned with taskset when available).
#
# Usage: bench/jwt.sh [SECONDS]     (default 2: seconds per round; 3 rounds per case, best kept)
# Needs: gcc, pkg-config, jansson, libcrypto, libjwt (libjwt-dev), node + npm.
#
# The C side builds with this plain command (no CMake):
#   gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Isrc bench/jwt_bench.c src/auth/jwt.c \
#       src/auth/b64url.c src/auth/capability.c src/auth/cap_cache.c src/proto/errors.c \
#       $(pkg-config --cflags --libs jansson libcrypto libjwt) -lm -o build-bench/jwt_bench
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-2}
out=${BUILD_DIR:-build-bench}
mkdir -p "$out"

gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Isrc bench/jwt_bench.c src/auth/jwt.c \
    src/auth/b64url.c src/auth/capability.c src/auth/cap_cache.c src/proto/errors.c \
    $(pkg-config --cflags --libs jansson libcrypto libjwt) -lm -o "$out/jwt_bench"

[ -d bench/node_modules/jsonwebtoken ] || npm ci --prefix bench --no-audit --no-fund >/dev/null

# A fixed benchmark key; the secret has non-ASCII characters on purpose
# (Node signs with their UTF-8 bytes, as the C side must).
key_name="bench.key1"
secret="bench-secret-ü-0123456789abcdef"
token=$(node bench/jwt_bench.mjs mint "$key_name" "$secret")

pin=()
if command -v taskset >/dev/null; then pin=(taskset -c "${BENCH_CPU:-0}"); fi

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), pinned: ${pin[*]:-no}"
echo "node $(node --version), jsonwebtoken $(node -p "require('./bench/node_modules/jsonwebtoken/package.json').version"), $(openssl version 2>/dev/null || echo openssl ?), libjwt $(pkg-config --modversion libjwt)"
echo "token: ${#token} bytes"

c_out=$("${pin[@]}" "$out/jwt_bench" "$token" "$key_name" "$secret" "$seconds")
node_out=$("${pin[@]}" node bench/jwt_bench.mjs verify "$token" "$secret" "$seconds")

node_rate=$(awk '{print $2}' <<<"$node_out")
printf '%-26s %12s %8s\n' case "ops/s/core" "x node"
while read -r name rate; do
  printf '%-26s %12s %8.1f\n' "$name" "$rate" "$(awk -v a="$rate" -v b="$node_rate" 'BEGIN{print a/b}')"
done <<<"$c_out
$node_out"

full=$(awk '$1=="full_server"{print $2}' <<<"$c_out")
awk -v f="$full" -v n="$node_rate" 'BEGIN{
  ok = (f >= 400000 && f >= 8 * n);
  printf "target (full_server >= 400000/s and >= 8x node): %s\n", ok ? "met" : "NOT met";
  exit ok ? 0 : 1 }'
