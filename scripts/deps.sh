#!/usr/bin/env bash
# Installs what switchboard needs on Debian 12, if it is missing.
# Usage: scripts/deps.sh [build|test]   (test adds sanitizer/fuzzer runtimes)
set -euo pipefail
pkgs=(build-essential cmake pkg-config libuv1-dev libjansson-dev libmsgpack-dev libsqlite3-dev
      libssl-dev libhttp-parser-dev uthash-dev libjwt-dev
      libcurl4-openssl-dev libhiredis-dev)
if [ "${1:-build}" = test ]; then
  # chromium: the AI Transport browser test (tests/ai/browser.test.mjs);
  # openssl: the throwaway certificates of the TLS tests (tests/lib/tls-certs.mjs);
  # redis-server: the cluster tests start their own (tests/unit/test_redis_*.c);
  # nginx-light: tests/integration/cluster-lb.test.mjs runs docs/cluster.md's nginx block.
  pkgs+=(libcmocka-dev clang libclang-rt-14-dev chromium openssl redis-server nginx-light)
  command -v node >/dev/null || pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
