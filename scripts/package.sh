#!/usr/bin/env bash
# Builds the Debian package: build-pkg/switchboard_<version>-1_<arch>.deb
# (release build, stripped; dependencies from dpkg-shlibdeps). Prints the
# path of the .deb as its last line. Installs the build dependencies first
# if they are missing (scripts/deps.sh; build-essential brings dpkg-dev).
# Usage: scripts/package.sh [BUILD_DIR]   (default build-pkg)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-pkg}
scripts/deps.sh build
cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
  -DSW_PACKAGE=ON -DSW_TESTS=OFF -DSW_FUZZ=OFF -DSW_SANITIZE=OFF >/dev/null
cmake --build "$out" -j"$(nproc)"
rm -f "$out"/switchboard_*.deb
(cd "$out" && cpack -G DEB >/dev/null)
deb=$(ls "$out"/switchboard_*.deb)
echo "$deb"
