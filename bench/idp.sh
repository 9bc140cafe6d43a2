#!/usr/bin/env bash
# Identity-provider token verification per second on one core, beside
# OpenSSL's own `openssl speed` verify rate and Node's `jose` on the same
# tokens (docs/benchmarks.md, "Identity provider tokens"). Runs each RUNS
# times (default 3), pinned to one CPU, and prints the median with min-max,
# each stage as a share of openssl's rate and as a multiple of jose's, the
# issue 16 targets, and the machine's load.
#
# Every rate is per second of CPU time (`openssl speed` divides by user CPU
# time; bench_idp and idp_jose.mjs do the same), so other processes on a
# shared machine do not count as slowness; cpu= is the share of wall-clock
# time the benchmark had its CPU.
#
# Usage: bench/idp.sh [SECONDS_PER_MEASUREMENT] [RUNS]
#   STORM=N[,N...] (default 300,1000): the reconnect storms bench_idp runs
#   (N users' tokens, each verified once, then all again; "" for none).
# Needs build/bench_idp (cmake --build build --target bench_idp), node, npm.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-1}
runs=${2:-3}
# openssl speed takes whole seconds.
ossl_seconds=$(awk -v s="$seconds" 'BEGIN { r = int(s + 0.5); print r < 1 ? 1 : r }')
bin=build/bench_idp
[ -x "$bin" ] || { echo "build $bin first: cmake --build build --target bench_idp" >&2; exit 2; }
[ -d bench/node_modules/jose ] || npm ci --prefix bench --no-audit --no-fund >/dev/null
pin=()
command -v taskset >/dev/null && pin=(taskset -c "${BENCH_CPU:-0}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') x $(nproc), pinned: ${pin[*]:-no}"
echo "$(openssl version), node $(node --version), jose $(node -p "require('./bench/node_modules/jose/package.json').version")"
for ((r = 0; r < runs; r++)); do
  load0=$(cut -d' ' -f1 /proc/loadavg)
  "${pin[@]}" "$bin" --seconds "$seconds" --tokens "$tmp/tokens.json" --storm "${STORM-300,1000}" >>"$tmp/out"
  "${pin[@]}" node bench/idp_jose.mjs "$tmp/tokens.json" "$seconds" >>"$tmp/out"
  # The verify/s column of openssl speed.
  "${pin[@]}" openssl speed -seconds "$ossl_seconds" rsa2048 ecdsap256 ed25519 2>/dev/null | awk '
    /^rsa 2048 bits/ { print "RS256 openssl", $NF }
    /ecdsa \(nistp256\)/ { print "ES256 openssl", $NF }
    /EdDSA \(Ed25519\)/ { print "EdDSA openssl", $NF }' >>"$tmp/out"
  echo "run $((r + 1)): load average $load0 -> $(cut -d' ' -f1 /proc/loadavg)"
done

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) printf "%.0f %.0f %.0f\n", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
printf '%-6s %-10s %10s %17s %7s %7s  %s\n' alg stage "median/s" "min-max" "%ossl" "x jose" "cpu share per run"
for alg in RS256 ES256 EdDSA; do
  read -r ossl _ < <(grep "^$alg openssl " "$tmp/out" | awk '{print $3}' | median)
  read -r jose _ < <(grep "^$alg jose " "$tmp/out" | awk '{print $3}' | median)
  for stage in openssl $(awk -v a="$alg" '$1 == a && $2 != "openssl" && !seen[$2]++ { print $2 }' "$tmp/out"); do
    read -r med lo hi < <(grep "^$alg $stage " "$tmp/out" | awk '{print $3}' | median)
    shares=$(grep "^$alg $stage " "$tmp/out" | sed -n 's/.*cpu=\([0-9.]*\).*/\1/p' | paste -sd' ' -)
    hits=$(grep "^$alg $stage " "$tmp/out" | sed -n 's/.*hits=//p' | paste -sd' ' -)
    awk -v a="$alg" -v s="$stage" -v m="$med" -v lo="$lo" -v hi="$hi" -v o="$ossl" -v j="$jose" -v sh="$shares" \
        -v h="$hits" 'BEGIN {
      printf "%-6s %-10s %10d %8d-%-8d %6.0f%% %7.2f  %s%s\n", a, s, m, lo, hi, 100 * m / o, m / j, sh,
        h == "" ? "" : "  hits " h }'
  done
done
# Issue 16: the whole verification (signature and claims: the identity
# stage) at >= 85% of openssl's raw verify rate, and RS256 >= 2.8x jose
# (both ways of running jose are shown; "jose" is the faster).
for alg in RS256 ES256 EdDSA; do
  read -r ossl _ < <(grep "^$alg openssl " "$tmp/out" | awk '{print $3}' | median)
  read -r full _ < <(grep "^$alg identity " "$tmp/out" | awk '{print $3}' | median)
  read -r jose _ < <(grep "^$alg jose " "$tmp/out" | awk '{print $3}' | median)
  read -r jose1 _ < <(grep "^$alg jose1 " "$tmp/out" | awk '{print $3}' | median)
  awk -v a="$alg" -v f="$full" -v o="$ossl" -v j="$jose" -v j1="$jose1" 'BEGIN {
    m = (f >= 0.85 * o) ? "met" : "NOT met"
    printf "target %s: identity %.0f%% of openssl (>= 85%%: %s)", a, 100 * f / o, m
    if (a == "RS256") {
      m = (f >= 2.8 * j) ? "met" : "NOT met"
      m1 = (f >= 2.8 * j1) ? "met" : "NOT met"
      printf "; %.2fx jose, %.2fx jose1 (>= 2.8x: %s, %s)", f / j, f / j1, m, m1
    }
    printf "\n" }'
done
