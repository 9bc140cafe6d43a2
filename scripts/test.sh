#!/usr/bin/env bash
# The whole test suite: unit tests (cmocka), integration tests with the real
# npm `ably` SDK, the same again under AddressSanitizer + UBSan, and a short
# run of every libFuzzer target. Installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
jobs=$(nproc)
FUZZ_SECONDS=${FUZZ_SECONDS:-15}
passed=0; failed=0
step() { echo; echo "=== $*"; }
record() { if [ "$1" -eq 0 ]; then passed=$((passed+1)); else failed=$((failed+1)); echo "FAILED: $2"; fi; }

step "dependencies"
scripts/deps.sh test
for d in tests/integration tests/ai examples/ai-chat; do
  (cd "$d" && npm ci --no-audit --no-fund --loglevel=error)
done

step "build (release, -Werror)"
cmake --fresh -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

step "unit tests"
set +e
ctest --test-dir build --output-on-failure -j"$jobs"; record $? "unit tests"

step "integration tests (ably SDK against build/switchboard)"
SWITCHBOARD_BIN=$root/build/switchboard node --test --test-concurrency=1 tests/integration/; record $? "integration tests"
step "client CLI tests (jsonwebtoken, requestToken, ably SDK)"
SWITCHBOARD_BIN=$root/build/switchboard node --test tests/client/; record $? "client CLI tests"
step "AI Transport tests (@ably/ai-transport, example app in headless chromium)"
SWITCHBOARD_BIN=$root/build/switchboard node --test --test-concurrency=1 tests/ai/; record $? "ai transport tests"
step "load generator, quick mode (fails on lost messages or errors, not on missed targets)"
for s in connect idle fanout durable ai; do
  build/switchboard bench "$s" --quick; record $? "bench $s --quick"
done
step "Debian package (scripts/package.sh: contents, dependencies, the packaged binary serves)"
tests/package/test.sh; record $? "package"
set -e

step "build (ASan + UBSan, clang)"
CC=clang cmake --fresh -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSW_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
set +e
step "unit tests under sanitizers"
ctest --test-dir build-asan --output-on-failure -j"$jobs"; record $? "unit tests (asan)"
step "integration tests under sanitizers"
SWITCHBOARD_BIN=$root/build-asan/switchboard node --test --test-concurrency=1 tests/integration/; record $? "integration tests (asan)"
step "client CLI tests under sanitizers"
SWITCHBOARD_BIN=$root/build-asan/switchboard node --test tests/client/; record $? "client CLI tests (asan)"
step "AI Transport tests under sanitizers"
SWITCHBOARD_BIN=$root/build-asan/switchboard node --test --test-concurrency=1 tests/ai/; record $? "ai transport tests (asan)"
set -e

step "fuzzers (${FUZZ_SECONDS}s each)"
CC=clang cmake --fresh -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DSW_FUZZ=ON -DSW_TESTS=OFF -DSW_SANITIZE=ON >/dev/null
cmake --build build-fuzz -j"$jobs"
set +e
for f in build-fuzz/fuzz_*; do
  name=$(basename "$f"); corpus_src=fuzz/corpus/${name#fuzz_}
  work=$(mktemp -d)
  [ -d "$corpus_src" ] && cp -r "$corpus_src"/. "$work"/
  "$f" -max_total_time="$FUZZ_SECONDS" -print_final_stats=0 "$work" >"$work.log" 2>&1
  rc=$?; [ $rc -eq 0 ] || tail -40 "$work.log"
  record $rc "fuzzer $name"
  rm -rf "$work" "$work.log"
done
set -e

echo
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
