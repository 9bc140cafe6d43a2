#!/usr/bin/env bash
# Identity-provider token verification per second on one core, against
# OpenSSL's own `openssl speed` verify numbers (docs/benchmarks.md,
# "Identity provider tokens"). Runs each RUNS times (default 3) and prints
# the median with min-max. Needs build/bench_idp (cmake --build build).
#
# Usage: bench/idp.sh [SECONDS_PER_MEASUREMENT] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-1}
runs=${2:-3}
bin=build/bench_idp
[ -x "$bin" ] || { echo "build $bin first: cmake --build build --target bench_idp" >&2; exit 2; }
pin=()
command -v taskset >/dev/null && pin=(taskset -c 0)
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
for ((r = 0; r < runs; r++)); do
  "${pin[@]}" "$bin" --seconds "$seconds" >>"$tmp"
  # The verify/s column of openssl speed.
  "${pin[@]}" openssl speed -seconds "$seconds" rsa2048 ecdsap256 ed25519 2>/dev/null | awk '
    /^rsa 2048 bits/ { print "RS256 openssl", $NF }
    /ecdsa \(nistp256\)/ { print "ES256 openssl", $NF }
    /EdDSA \(Ed25519\)/ { print "EdDSA openssl", $NF }' >>"$tmp"
done
printf '%-6s %-9s %12s %25s\n' alg stage "median/s" "min-max"
for alg in RS256 ES256 EdDSA; do
  for stage in openssl sig sig_fresh jws identity cached; do
    grep "^$alg $stage " "$tmp" | awk '{print $3}' | sort -n | awk -v a="$alg" -v s="$stage" '
      { v[NR] = $1 }
      END { if (NR) printf "%-6s %-9s %12.0f %12.0f-%-12.0f\n", a, s, v[int((NR + 1) / 2)], v[1], v[NR] }'
  done
done
