#!/usr/bin/env bash
# Installs dependencies, builds, and starts switchboard on its embedded
# default (SQLite in ./data, http://127.0.0.1:8080). Extra arguments go to
# `switchboard serve`, e.g. scripts/run.sh --listen 0.0.0.0:8080
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSW_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)"
exec build/switchboard serve "$@"
