#!/usr/bin/env bash
# The Debian package (issue 14, item 6): builds it with scripts/package.sh,
# checks its contents, control data and dependencies, lints the man page and
# the systemd unit, builds a program against the packaged library, then
# extracts the package into a temp dir (nothing is installed system-wide) and
# runs the packaged binary with the packaged default config, pointed at a
# temp data dir and port 0: GET /time and the real ably SDK must work, SIGHUP
# must be harmless and SIGTERM must end it with status 0.
#
# Usage: tests/package/test.sh   (SW_PKG_BUILD_DIR: build dir, default build-pkg)
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }

echo "== building the package"
deb=$(scripts/package.sh "${SW_PKG_BUILD_DIR:-build-pkg}" | tail -1)
[ -f "$deb" ] || fail "scripts/package.sh printed no .deb ($deb)"
ok "built $deb"

echo "== contents (dpkg-deb -c)"
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
version=$(dpkg-deb -f "$deb" Version)
upstream=${version%-*}
# Names only: the sixth column ("a -> b" for symlinks).
dpkg-deb -c "$deb" | awk '{print $6}' >"$work/contents"
for f in ./usr/bin/switchboard \
  "./usr/lib/$ma/libswitchboard.so.$upstream" "./usr/lib/$ma/libswitchboard.so.0" \
  "./usr/lib/$ma/libswitchboard.so" "./usr/lib/$ma/libswitchboard.a" \
  ./usr/include/switchboard.h "./usr/lib/$ma/pkgconfig/switchboard.pc" \
  ./usr/share/man/man1/switchboard.1.gz ./lib/systemd/system/switchboard.service \
  ./etc/switchboard/switchboard.json ./usr/share/doc/switchboard/README.md \
  ./usr/share/doc/switchboard/operations.md; do
  grep -qxF -- "$f" "$work/contents" || fail "$f is not in the package"
done
ok "binary, library (.so, .a), header, .pc, man page, unit, config, docs"
if grep -q '^\./var/lib/switchboard' "$work/contents"; then
  fail "/var/lib/switchboard is systemd's (StateDirectory=), not the package's"
fi

echo "== control data (dpkg-deb -I)"
depends=$(dpkg-deb -f "$deb" Depends)
echo "Depends: $depends"
for p in libuv1 libjansson4 libsqlite3-0 libssl3 libhttp-parser2.9 libjwt0 libhiredis0.14 libcurl4 libc6 adduser; do
  grep -qE "(^|, )$p( |,|$)" <<<"$depends" || fail "Depends lacks $p"
done
[ "$(dpkg-deb -f "$deb" Package)" = switchboard ] || fail "package name"
grep -qE "(^|, )redis-server( |,|$)" <<<"$(dpkg-deb -f "$deb" Suggests)" || fail "Suggests lacks redis-server (a cluster node needs a Redis)"
dpkg-deb -e "$deb" "$work/DEBIAN"
grep -qxF /etc/switchboard/switchboard.json "$work/DEBIAN/conffiles" || fail "the config is not a conffile"
grep -qx 'activate-noawait ldconfig' "$work/DEBIAN/triggers" || fail "no ldconfig trigger for libswitchboard.so.0"
grep -q '^libswitchboard 0 switchboard' "$work/DEBIAN/shlibs" || fail "shlibs: $(cat "$work/DEBIAN/shlibs")"
for s in postinst prerm postrm; do
  [ -x "$work/DEBIAN/$s" ] || fail "$s is not executable"
  sh -n "$work/DEBIAN/$s" || fail "$s: syntax"
done
ok "dependencies, conffiles, shlibs, ldconfig trigger, maintainer scripts"

echo "== extracted (dpkg-deb -x, nothing installed)"
x=$work/root
dpkg-deb -x "$deb" "$x"
bin=$x/usr/bin/switchboard
# Every library the packaged binary and libswitchboard link directly (their
# NEEDED entries; what those pull in is their packages' business) comes from
# a package in Depends.
for elf in "$bin" "$x/usr/lib/$ma/libswitchboard.so.$upstream"; do
  needed=$(objdump -p "$elf" | awk '$1 == "NEEDED" {print $2}')
  for so in $(ldd "$elf" | awk -v n="$needed" 'BEGIN {split(n, a, "\n"); for (i in a) want[a[i]] = 1}
                                                  $3 ~ /^\// && ($1 in want) {print $3}'); do
    owner=$(dpkg -S "$(readlink -f "$so")" 2>/dev/null || dpkg -S "$so" 2>/dev/null || true)
    owner=${owner%%:*}
    [ -n "$owner" ] || fail "no package owns $so"
    case "$owner" in libb64-0d) continue ;; esac # libjwt0's own dependency
    grep -qE "(^|, )$owner( |,|$)" <<<"$depends" || fail "$(basename "$elf") links $so of $owner, not in Depends"
  done
done
ok "every linked library's package is in Depends"
"$bin" --version | grep -qxF "switchboard $upstream" || fail "--version: $("$bin" --version)"

unit=$x/lib/systemd/system/switchboard.service
# shellcheck disable=SC2016 # $MAINPID is systemd's, not ours
for d in 'ExecStart=/usr/bin/switchboard serve --config /etc/switchboard/switchboard.json' \
  'ExecReload=/bin/kill -HUP $MAINPID' StateDirectory=switchboard ProtectSystem=strict NoNewPrivileges=yes \
  User=switchboard; do
  grep -qxF -- "$d" "$unit" || fail "unit lacks $d"
done
grep -q '^LimitNOFILE=[0-9]' "$unit" || fail "unit lacks LimitNOFILE="
if command -v systemd-analyze >/dev/null; then
  # The unit as installed, but with ExecStart pointing into the extract.
  mkdir -p "$work/unit"
  sed "s#/usr/bin/switchboard#$bin#" "$unit" >"$work/unit/switchboard.service"
  out=$(systemd-analyze verify --man=no --generators=no "$work/unit/switchboard.service" 2>&1) || true
  if [ -z "$out" ]; then
    ok "systemd-analyze verify"
  elif grep -qE 'Unknown (key|section)|Failed to parse|[Ii]nvalid|ignoring' <<<"$out"; then
    fail "systemd-analyze verify: $out"
  else
    echo "skip: systemd-analyze verify cannot run here: $out"
  fi
else
  echo "skip: no systemd-analyze"
fi

if command -v man >/dev/null; then
  warn=$(MANWIDTH=80 man --warnings -l "$x/usr/share/man/man1/switchboard.1.gz" 2>&1 >"$work/man.txt") || fail "man: $warn"
  [ -z "$warn" ] || fail "man page warnings: $warn"
  grep -q -- '--log-format' "$work/man.txt" || fail "the man page does not render"
  ok "man page renders without warnings"
fi

# The packaged header, .pc and library build and run a client program.
cat >"$work/v.c" <<'EOF'
#include <stdio.h>
#include <switchboard.h>
int main(void) { puts(sw_version()); return 0; }
EOF
pc=$x/usr/lib/$ma/pkgconfig
# shellcheck disable=SC2046
cc -o "$work/v" "$work/v.c" $(PKG_CONFIG_PATH=$pc pkg-config --cflags --libs switchboard) || fail "cc with the packaged .pc"
[ "$(LD_LIBRARY_PATH=$x/usr/lib/$ma "$work/v")" = "$upstream" ] || fail "sw_version() from the packaged .so"
# The archive, with its dependencies as shared libraries (as the .pc's
# Requires.private name them).
# shellcheck disable=SC2046
cc -o "$work/vs" "$work/v.c" -I"$x/usr/include" "$x/usr/lib/$ma/libswitchboard.a" \
  $(pkg-config --libs libuv jansson libssl libcrypto msgpack libjwt) -lhttp_parser -lpthread -lm \
  || fail "static link with the packaged libswitchboard.a"
[ "$("$work/vs")" = "$upstream" ] || fail "sw_version() from the packaged .a"
ok "a program builds against the packaged header, .pc, .so and .a"

echo "== the packaged binary serves, with the packaged config"
[ -d tests/integration/node_modules/ably ] || (cd tests/integration && npm ci --no-audit --no-fund --loglevel=error)
data=$work/data
mkdir -p "$data"
node -e '
  const fs = require("fs");
  const [src, dst, data] = process.argv.slice(1);
  const c = JSON.parse(fs.readFileSync(src, "utf8"));
  if (c.listen !== "127.0.0.1:8080" || c.data !== "/var/lib/switchboard") throw new Error("default config: " + JSON.stringify(c));
  c.listen = "127.0.0.1:0";
  c.data = data;
  fs.writeFileSync(dst, JSON.stringify(c));
' "$x/etc/switchboard/switchboard.json" "$work/config.json" "$data"
"$bin" serve --config "$work/config.json" >"$work/stdout" 2>"$work/stderr" &
pid=$!
port=
for _ in $(seq 100); do
  port=$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$work/stdout")
  [ -n "$port" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$port" ] || fail "the packaged server did not start: $(cat "$work/stdout" "$work/stderr")"
key=$(sed -n 's/^  API key: \([^ ]*\)$/\1/p' "$work/stdout")
[ -n "$key" ] || fail "no development app key on first start: $(cat "$work/stdout")"
ok "listening on port $port with a fresh data dir"
timeout 60 node tests/package/smoke.mjs "$port" "$key" || fail "the SDK smoke test against the packaged binary"

# systemctl reload: SIGHUP is logged and the server keeps serving.
kill -HUP "$pid"
for _ in $(seq 50); do grep -q 'SIGHUP: nothing to reload' "$work/stderr" && break; sleep 0.1; done
grep -q 'SIGHUP: nothing to reload' "$work/stderr" || fail "no log line for SIGHUP: $(cat "$work/stderr")"
kill -0 "$pid" 2>/dev/null || fail "SIGHUP ended the server"
node -e 'fetch(process.argv[1]).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))' \
  "http://127.0.0.1:$port/time" || fail "GET /time after SIGHUP"
ok "SIGHUP (ExecReload) is harmless"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] || fail "exit status $rc after SIGTERM: $(cat "$work/stderr")"
[ -f "$data/switchboard.db" ] || fail "no switchboard.db in the data dir"
# The packaged config logs text: every stderr line is "TIME LEVEL message".
if grep -vE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z (error|warn|info|debug) ' "$work/stderr"; then
  fail "stderr lines that are not text log lines (above)"
fi
ok "SIGTERM: exit 0, data in the data dir"
echo "package test passed"
