#!/usr/bin/env bash
# bench/run.sh: the realtime figures of docs/benchmarks.md, switchboard beside
# its peers, measured the same way every time (issue 15 item 1):
#
#   - every figure is the median of several runs (3; connects 5), with min-max;
#   - the peers run in the same invocation, interleaved run by run with
#     switchboard, so both sides see the same machine:
#       Redis pub/sub   Debian redis-server, RESP over TCP, AUTH with a password
#       mosquitto       Debian mosquitto, MQTT 3.1.1 QoS 0 over WebSocket
#   - idle memory is read at steady state: RSS polled every second until all
#     the readings of the last 10 s lie within 0.5 % of each other (cap
#     --settle-cap s; see settle_rss in tools/bench.c for why two consecutive
#     readings are not enough), each server freshly started per run; the
#     time it took and every reading are recorded;
#   - server CPU per operation is utime+stime from /proc/PID/stat over the
#     measured window, for switchboard and for the peer alike;
#   - the 1-minute load average at the start and end of every run, the
#     machine's busy CPU during it (/proc/stat) and nproc are recorded;
#   - the commit (and whether the tree was dirty) heads the results;
#   - cluster (issue 12): 1, 2 and 3 nodes on one Redis (its own instance,
#     appendonly yes, appendfsync everysec, recorded in the results) beside
#     a single SQLite node, interleaved run by run: fan-out with the
#     subscribers round-robin over the nodes and the publisher on the first,
#     and publish ACK latency at a fixed rate (--cluster-rate, 20,000/s, the
#     issue's target) with the publishers round-robin; server CPU from /proc
#     for every node and for Redis. Nothing pinned (up to four server
#     processes share the machine's cores with the load).
#
# It installs what is missing (apt), builds `switchboard` (Release) into
# BUILD_DIR, starts the peers on 127.0.0.1 with their own configs in a temp
# dir, stops what it started (trap), and writes into OUT:
#   runs.jsonl     one JSON object per run (the bench's own --json line plus
#                  label, run number, load averages, machine CPU, wall time)
#   results.json   per figure: median/min/max of every numeric field over its
#                  successful runs, runs ok and failed, load at its start and
#                  end, and the runs themselves; the run's metadata
#   results.md     the markdown section (bench/report.sh)
#   benchmarks.svg the chart (bench/chart.mjs, medians with min-max bars)
#   commands.txt   the exact commands run
# With --docs (the default for a full run) it also splices results.md into
# docs/benchmarks.md between the "bench/run.sh" markers and copies
# results.json to docs/benchmarks-results.json and the chart to
# docs/benchmarks.svg.
#
# Usage: bench/run.sh [--quick] [--runs N] [--connect-runs N] [--only LIST]
#                     [--out DIR] [--docs|--no-docs] [--settle-cap S]
#   --quick          every scenario in its few-second mode (3 runs each; idle
#                    settles over 2 s, capped at 10 s), no docs: checks the
#                    script end to end
#   --runs N         runs per figure (default 3)
#   --connect-runs N runs per connect figure (default 5)
#   --only LIST      comma-separated subset of: fanout,idle,connect,durable,ai,jwt,cluster
#   --cluster-rate N cluster: publishes/s of the ACK figure (default 20000)
#   --out DIR        where the results go (default bench/results/UTCSTAMP-COMMIT)
#   --settle-cap S   idle: stop polling RSS after S seconds (default 120)
# Environment: SERVER_CPUS (default 0) and LOAD_CPUS (default 1) pin the
# server under test and the load generator where a figure says so; BUILD_DIR
# (default build-bench); KEEP_WORK=1 keeps the temp dir (configs, peer logs).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0; runs=""; connect_runs=""; docs=""; only="fanout,idle,connect,durable,ai,jwt,cluster"; out=""; settle_cap=""
cluster_rate=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --runs|--rounds) runs=$2; shift ;;
    --connect-runs) connect_runs=$2; shift ;;
    --docs) docs=1 ;;
    --no-docs) docs=0 ;;
    --only) only=$2; shift ;;
    --out) out=$2; shift ;;
    --settle-cap) settle_cap=$2; shift ;;
    --cluster-rate) cluster_rate=$2; shift ;;
    -h|--help) sed -n '2,58p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$only," == *",$1,"* ]]; }
runs=${runs:-3}; connect_runs=${connect_runs:-$([ $quick -eq 1 ] && echo 3 || echo 5)}
docs=${docs:-$([ $quick -eq 1 ] && echo 0 || echo 1)}
settle_cap=${settle_cap:-$([ $quick -eq 1 ] && echo 10 || echo 120)}
settle_window=$([ $quick -eq 1 ] && echo 2 || echo 10)
server_cpus=${SERVER_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}
build=${BUILD_DIR:-build-bench}
t_start=$(date +%s)

# ---- what was measured: the commit, before anything is built ----------------
commit=$(git rev-parse --short HEAD)
dirty=false; [ -z "$(git status --porcelain --untracked-files=no)" ] || dirty=true
stamp=$(date -u +%Y%m%dT%H%M%SZ)
out=${out:-bench/results/$stamp-$commit}
mkdir -p "$out"; out=$(cd "$out" && pwd)

# ---- dependencies and build ----------------------------------------------------
scripts/deps.sh build
peer_pkgs=(redis-server redis-tools mosquitto jq)
command -v node >/dev/null || peer_pkgs+=(nodejs npm) # the JWT figure's Node side, the chart
missing=()
for p in "${peer_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian may start the packaged services; we run our own instances on free
# ports, so those are left as they are.

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target switchboard >/dev/null
bin=$root/$build/switchboard

# ---- peers -----------------------------------------------------------------------
work=$(mktemp -d /tmp/swbench-run-XXXXXX)
chmod 755 "$work" # mosquitto drops to its own user after reading its config
redis_pid=""; mq_pid=""; cl_redis_pid=""; node_pids=()
cleanup() {
  for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ -n "$cl_redis_pid" ] && kill "$cl_redis_pid" 2>/dev/null && wait "$cl_redis_pid" 2>/dev/null
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
  [ -n "$mq_pid" ] && kill "$mq_pid" 2>/dev/null && wait "$mq_pid" 2>/dev/null
  if [ -n "${KEEP_WORK:-}" ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Storms hold tens of thousands of sockets, on both ends.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"

# Below the ephemeral range (32768-60999), where a storm's client ends would
# otherwise collide with a listener; each port differs from those taken.
taken=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    [[ "$taken" == *" $p "* ]] && continue
    ss -Htan "( sport = :$p )" 2>/dev/null | grep -q . && continue
    taken="$taken$p "; echo "$p"; return
  done
}
wait_port() {
  for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "bench/run.sh: nothing listens on $1" >&2; return 1
}

password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
free_port >"$work/port"; redis_port=$(cat "$work/port")
free_port >"$work/port"; mq_port=$(cat "$work/port")
free_port >"$work/port"; mq_tcp_port=$(cat "$work/port")

cat >"$work/redis.conf" <<EOF
bind 127.0.0.1
port $redis_port
protected-mode yes
requirepass $password
save ""
appendonly no
dir $work
daemonize no
tcp-backlog 4096
maxclients 200000
logfile $work/redis.log
EOF

mosquitto_passwd -c -b "$work/mosquitto.passwd" bench "$password" >/dev/null 2>&1
chmod 644 "$work/mosquitto.passwd"
# mosquitto 2.0 refuses to start with only a websockets listener, and binds
# a websockets listener to every interface unless socket_domain is set: the
# plain MQTT listener is there only so that it starts, on loopback too.
cat >"$work/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous false
password_file $work/mosquitto.passwd
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
listener $mq_tcp_port 127.0.0.1
protocol mqtt
listener $mq_port 127.0.0.1
protocol websockets
socket_domain ipv4
EOF

start_redis() {
  taskset -c "$server_cpus" redis-server "$work/redis.conf" &
  redis_pid=$!
  wait_port "$redis_port"
}
stop_redis() { [ -z "$redis_pid" ] || { kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=""; }; }
start_mosquitto() {
  taskset -c "$server_cpus" mosquitto -c "$work/mosquitto.conf" 2>>"$work/mosquitto.log" &
  mq_pid=$!
  wait_port "$mq_port"
}
stop_mosquitto() { [ -z "$mq_pid" ] || { kill "$mq_pid"; wait "$mq_pid" 2>/dev/null || true; mq_pid=""; }; }

# ---- one run -------------------------------------------------------------------------
rows=$out/runs.jsonl
commands=$out/commands.txt
: >"$rows"; : >"$commands"
q=(); [ $quick -eq 1 ] && q=(--quick)
sw_pin=(--server-cpus "$server_cpus" --load-cpus "$load_cpus")
redis_args() { echo --target redis --port "$redis_port" --password "$password" --server-pid "$redis_pid" --load-cpus "$load_cpus"; }
mq_args() { echo --target mosquitto --port "$mq_port" --user bench --password "$password" --server-pid "$mq_pid" --load-cpus "$load_cpus"; }

load1() { cut -d' ' -f1 /proc/loadavg; }
# The machine's CPU counters (all cores): "busy total" in ticks.
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

# record LABEL RUN CMD...: runs CMD (which prints one JSON line per result),
# and appends each line to runs.jsonl with the label, the run number, the
# load average before and after, the machine's busy CPU over the run (% of
# all cores) and the wall time. A failing run is kept (ok: false, with what
# it printed) when tolerate=1 (AI shapes this box may not sustain), else the
# script stops.
record() {
  local label=$1 run=$2; shift 2
  local doc
  # The command as documented: the binary relative to the repo, secrets,
  # ports and pids as variables.
  doc=$(printf '%s\n' "$*" | sed -e "s#$root/##g" -e "s#$password#\$PASSWORD#g" \
    -e "s#--port $redis_port#--port \$REDIS_PORT#" -e "s#--port $mq_port#--port \$MQTT_WS_PORT#" \
    -e "s#--port ${node_port:-NONE} #--port \$NODE_PORT #" \
    -e "s#--server-pid [0-9]*,[0-9,]*#--server-pid \$NODE_PIDS,\$REDIS_PID#" -e "s#--server-pid [0-9][0-9]*#--server-pid \$PID#")
  grep -qxF -- "$doc" "$commands" || printf '%s\n' "$doc" >>"$commands"
  echo "  $label, run $run" >&2
  local l0 l1 c0 c1 t0 t1 rc=0
  l0=$(load1); c0=$(cpu_ticks); t0=$(date +%s.%N)
  "$@" >"$work/run.out" 2>"$work/run.err" || rc=$?
  t1=$(date +%s.%N); c1=$(cpu_ticks); l1=$(load1)
  local busy
  busy=$(awk -v a="$c0" -v b="$c1" 'BEGIN { split(a, x, " "); split(b, y, " ");
    d = y[2] - x[2]; if (d > 0) printf "%.1f", 100 * (y[1] - x[1]) / d; else print 0 }')
  if [ $rc -ne 0 ] && [ -z "${tolerate:-}" ]; then
    echo "bench/run.sh: $label failed:" >&2; cat "$work/run.out" "$work/run.err" >&2; exit 1
  fi
  local extra
  extra=$(jq -cn --arg l "$label" --argjson r "$run" --argjson l0 "$l0" --argjson l1 "$l1" --argjson b "$busy" \
    --argjson w "$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')" --argjson ok "$([ $rc -eq 0 ] && echo true || echo false)" \
    '{label: $l, run: $r, ok: $ok, load_start: $l0, load_end: $l1, machine_busy_pct: $b, wall_s: $w}')
  if grep -q '^{' "$work/run.out"; then
    # A failed run's error: the bench's own, else the last of what it printed on stderr.
    grep '^{' "$work/run.out" | jq -c --argjson e "$extra" --arg err "$(tail -c 300 "$work/run.err")" \
      '. + $e + (if ($e.ok | not) and (.error == null) then {error: $err} else {} end)' >>"$rows"
  else
    jq -cn --argjson e "$extra" --arg err "$(tail -c 300 "$work/run.err")" '$e + {error: $err}' >>"$rows"
  fi
}
sb() { record "$1" "$2" "$bin" bench "${@:3}" "${q[@]}" --json; }

# ---- figures -------------------------------------------------------------------------
fan_subs=1000; idle_n=10000
[ $quick -eq 1 ] && { fan_subs=50; idle_n=200; }

if want fanout; then
  echo "fanout: 1 publisher -> $fan_subs subscribers, $runs runs, targets interleaved" >&2
  start_redis; start_mosquitto
  w1=(--window 1 --seconds 5 --warmup 1); [ $quick -eq 1 ] && w1=(--window 1)
  for r in $(seq "$runs"); do
    sb fanout-switchboard "$r" fanout --subscribers "$fan_subs" "${sw_pin[@]}"
    # shellcheck disable=SC2046
    sb fanout-redis "$r" fanout --subscribers "$fan_subs" $(redis_args)
    # shellcheck disable=SC2046
    sb fanout-mosquitto "$r" fanout --subscribers "$fan_subs" $(mq_args)
    # The same switchboard without SQLite: what storage costs the fan-out.
    sb fanout-switchboard-memory "$r" fanout --subscribers "$fan_subs" --memory "${sw_pin[@]}"
    # One message in flight: the fan-out latency without queueing.
    sb fanout1-switchboard "$r" fanout --subscribers "$fan_subs" "${w1[@]}" "${sw_pin[@]}"
    # shellcheck disable=SC2046
    sb fanout1-redis "$r" fanout --subscribers "$fan_subs" "${w1[@]}" $(redis_args)
  done
  stop_redis; stop_mosquitto
fi

if want idle; then
  echo "idle: $idle_n authenticated connections with one channel each, $runs runs, RSS at steady state" >&2
  # Each server freshly started per run, so its RSS growth is the connections'.
  for r in $(seq "$runs"); do
    sb idle-switchboard "$r" idle --connections "$idle_n" --settle "$settle_cap" --settle-window "$settle_window" "${sw_pin[@]}"
    start_redis
    # shellcheck disable=SC2046
    sb idle-redis "$r" idle --connections "$idle_n" --settle "$settle_cap" --settle-window "$settle_window" $(redis_args)
    stop_redis
    start_mosquitto
    # shellcheck disable=SC2046
    sb idle-mosquitto "$r" idle --connections "$idle_n" --settle "$settle_cap" --settle-window "$settle_window" $(mq_args)
    stop_mosquitto
  done
fi

if want connect; then
  echo "connect: JWT connect storm, $connect_runs runs" >&2
  for r in $(seq "$connect_runs"); do
    sb connect "$r" connect "${sw_pin[@]}"
    # Load on both cores, to see how far the storm goes when the load has more room.
    sb connect-2procs "$r" connect --procs 2
    # Bare WebSocket clients (upgrade with the JWT, wait for CONNECTED): the
    # server's side of the storm without libswitchboard's per-connection cost.
    sb connect-raw "$r" connect --raw "${sw_pin[@]}"
    sb connect-raw-2procs "$r" connect --raw --procs 2
  done
fi

if want durable; then
  echo "durable: SQLite synchronous=FULL, $runs runs" >&2
  # Nothing pinned: the storage thread and the loop each get a core when they can.
  for r in $(seq "$runs"); do
    sb durable-full "$r" durable --sync full
  done
fi

if want ai; then
  echo "ai: streams of appends beside bench/floor.c's floor, $runs runs" >&2
  gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror bench/floor.c -o "$build/floor"
  # Issue 15's shapes, with the appends of every stream on one writer
  # connection per load process (examples/ai-chat's agent server): 1000 x 20
  # x 2 with every append delivered on its own (rollup 0), and 1000 x 50 x 2
  # with Ably's default rollup window (40 ms). The floor is plain TCP in the
  # same shape, no server: what the kernel costs on this box.
  if [ $quick -eq 1 ]; then
    ai0=(--streams 20 --rate 20 --procs 2 --agents 2); ai40=(--streams 20 --rate 50 --procs 2 --agents 2)
    fl0=(--streams 20 --rate 20 --agents 2 --seconds 1); fl40=(--streams 20 --rate 50 --agents 2 --seconds 1)
  else
    ai0=(--streams 1000 --rate 20 --procs 2 --agents 2); ai40=(--streams 1000 --rate 50 --procs 2 --agents 2)
    fl0=(--streams 1000 --rate 20 --agents 2); fl40=(--streams 1000 --rate 50 --agents 2)
  fi
  for r in $(seq "$runs"); do
    tolerate=1 sb ai-r0 "$r" ai "${ai0[@]}" --append-rollup 0
    tolerate=1 record floor-r0 "$r" "$root/$build/floor" "${fl0[@]}" --json
    tolerate=1 sb ai-r40 "$r" ai "${ai40[@]}" --append-rollup 40
    tolerate=1 record floor-r40 "$r" "$root/$build/floor" "${fl40[@]}" --json
  done
fi

if want jwt; then
  echo "jwt: full verification against jsonwebtoken, $runs runs" >&2
  # The build command of bench/jwt.sh; one round per run here (the median of
  # runs is the figure, not the best of rounds).
  gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Isrc bench/jwt_bench.c src/auth/jwt.c \
      src/auth/b64url.c src/auth/capability.c src/auth/cap_cache.c src/proto/errors.c \
      $(pkg-config --cflags --libs jansson libcrypto libjwt) -lm -o "$build/jwt_bench"
  [ -d bench/node_modules/jsonwebtoken ] || npm ci --prefix bench --no-audit --no-fund >/dev/null
  key_name="bench.key1"; secret="bench-secret-ü-0123456789abcdef"
  token=$(node bench/jwt_bench.mjs mint "$key_name" "$secret")
  jwt_s=1; [ $quick -eq 1 ] && jwt_s=0.1
  # One JSON line per run: every C case and Node's rate, ops/s on CPU $server_cpus.
  cat >"$work/jwt_run.sh" <<'EOF'
#!/usr/bin/env bash
set -euo pipefail
bin=$1 token=$2 key=$3 secret=$4 s=$5 cpu=$6
c=$(taskset -c "$cpu" "$bin" "$token" "$key" "$secret" "$s" 1)
n=$(taskset -c "$cpu" node bench/jwt_bench.mjs verify "$token" "$secret" "$s" 1)
{ echo "$c"; echo "$n"; } | jq -R -s -c 'split("\n") | map(select(length > 0) | split(" ") | {(.[0]): (.[1] | tonumber)}) | add
  | {scenario: "jwt", seconds: '"$s"'} + . + {x_node: ((.full_server / .node_jsonwebtoken_verify * 100 | round) / 100)}'
EOF
  chmod +x "$work/jwt_run.sh"
  for r in $(seq "$runs"); do
    record jwt "$r" "$work/jwt_run.sh" "$root/$build/jwt_bench" "$token" "$key_name" "$secret" "$jwt_s" "$server_cpus"
  done
  sed -i "s#^$work/jwt_run.sh .*#bench/jwt.sh's build, then per run: $build/jwt_bench TOKEN $key_name SECRET $jwt_s 1; node bench/jwt_bench.mjs verify TOKEN SECRET $jwt_s 1 (each taskset -c $server_cpus)#" "$commands"
fi

if want cluster; then
  # Its own Redis, persisted as docs/cluster.md recommends (appendonly yes,
  # appendfsync everysec), emptied before every configuration so each
  # starts alike; the nodes on 127.0.0.2-4 with the same port (as
  # tests/integration/cluster.test.mjs runs them), each with its own data
  # directory (what is not shared yet), --sandbox so that the bench creates
  # its app with POST /apps on the first node (served by all, through Redis).
  cl_subs=$fan_subs; cl_pubs=8; cl_window=64
  echo "cluster: 1 publisher -> $cl_subs subscribers spread over the nodes, publish ACK at $cluster_rate/s; a single SQLite node, then 1, 2, 3 nodes on Redis, $runs runs" >&2
  free_port >"$work/port"; cl_redis_port=$(cat "$work/port")
  free_port >"$work/port"; node_port=$(cat "$work/port")
  mkdir -p "$work/cluster-redis"
  cat >"$work/cluster-redis.conf" <<EOF
bind 127.0.0.1
port $cl_redis_port
protected-mode yes
requirepass $password
save ""
appendonly yes
appendfsync everysec
dir $work/cluster-redis
daemonize no
tcp-backlog 4096
maxclients 200000
logfile $work/cluster-redis.log
EOF
  # The nodes' limits as the bench's own server has them (bench.c,
  # server_start); everything else is the default a user gets (the single
  # node: SQLite synchronous=FULL).
  echo '{"limits": {"maxConnections": 1000000, "maxPendingPublishes": 1000000}}' >"$work/node.json"
  redis_url="redis://:$password@127.0.0.1:$cl_redis_port/0"
  rcli() { redis-cli -p "$cl_redis_port" -a "$password" --no-auth-warning "$@"; }
  redis-server "$work/cluster-redis.conf" &
  cl_redis_pid=$!
  wait_port "$cl_redis_port"
  # The persistence in force, as Redis reports it (results.json's meta).
  cl_persist="appendonly $(rcli config get appendonly | tail -1), appendfsync $(rcli config get appendfsync | tail -1)"
  wait_ready() { # HOST LOG: /readyz answers 200 (a node: Redis reached, the shared state loaded)
    for _ in $(seq 1200); do
      curl -sf -o /dev/null "http://$1:$node_port/readyz" && return 0
      sleep 0.05
    done
    echo "bench/run.sh: the node on $1:$node_port did not become ready in 60 s; its log:" >&2
    tail -20 "$2" >&2; return 1
  }
  # start_nodes N: N nodes on Redis; N=0: one SQLite node, no Redis.
  start_nodes() {
    local n=$1 i extra=()
    node_pids=()
    if [ "$n" -gt 0 ]; then
      rcli flushall >/dev/null
      extra=(--redis "$redis_url")
    fi
    for i in $(seq "$(( n > 0 ? n : 1 ))"); do
      rm -rf "$work/node-$i"; mkdir -p "$work/node-$i"
      "$bin" serve --listen "127.0.0.$((i + 1)):$node_port" --sandbox --config "$work/node.json" \
        --data "$work/node-$i" "${extra[@]}" >"$work/node-$i.log" 2>&1 &
      node_pids+=($!)
    done
    for i in $(seq "${#node_pids[@]}"); do wait_ready "127.0.0.$((i + 1))" "$work/node-$i.log"; done
  }
  stop_nodes() {
    for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
    node_pids=()
  }
  {
    echo "# cluster: redis-server with $(grep -E '^(save|appendonly|appendfsync) ' "$work/cluster-redis.conf" | paste -sd';' | sed 's/;/; /g') (in force: $cl_persist)"
    echo "# cluster: node i = 1..N: switchboard serve --listen 127.0.0.\$((i+1)):\$NODE_PORT --sandbox --config node.json --data DIR_i --redis redis://:\$PASSWORD@127.0.0.1:\$CLUSTER_REDIS_PORT/0"
    echo "# cluster: the single node: the same on 127.0.0.2 without --redis; node.json: $(cat "$work/node.json")"
  } >>"$commands"
  for r in $(seq "$runs"); do
    for n in 0 1 2 3; do
      start_nodes "$n"
      hosts=$(for i in $(seq "${#node_pids[@]}"); do printf '127.0.0.%d,' $((i + 1)); done); hosts=${hosts%,}
      pids=$(IFS=,; echo "${node_pids[*]}")
      if [ "$n" -eq 0 ]; then lab=cluster-sqlite; else lab=cluster-$n; pids="$pids,$cl_redis_pid"; fi
      # A failed run is kept and shown (tolerate), not the end of a long run.
      tolerate=1 sb "$lab-fanout" "$r" fanout --subscribers "$cl_subs" --host 127.0.0.2 --hosts "$hosts" --port "$node_port" \
        --server-pid "$pids"
      tolerate=1 sb "$lab-ack" "$r" durable --publishers "$cl_pubs" --window "$cl_window" --pub-rate "$cluster_rate" \
        --host 127.0.0.2 --hosts "$hosts" --port "$node_port" --server-pid "$pids"
      stop_nodes
    done
  done
  kill "$cl_redis_pid"; wait "$cl_redis_pid" 2>/dev/null || true; cl_redis_pid=""
fi

# ---- results ---------------------------------------------------------------------------
# Per figure (label): the median, lowest and highest of every numeric field
# over its successful runs; the load average at its first run's start and its
# last run's end.
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
jq -s --arg commit "$commit" --argjson dirty "$dirty" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg stamp "$stamp" --argjson nproc "$(nproc)" --arg cpu "$cpu" --arg kernel "$(uname -r)" \
  --arg debian "$(cat /etc/debian_version 2>/dev/null || echo '?')" \
  --arg mem "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)" \
  --arg redis "$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
  --arg mosquitto "$( (mosquitto -h 2>/dev/null || true) | sed -n 's/^mosquitto version \([^ ]*\).*/\1/p' | head -1)" \
  --arg sqlite "$(pkg-config --modversion sqlite3 2>/dev/null || echo '?')" \
  --arg libuv "$(pkg-config --modversion libuv 2>/dev/null || echo '?')" \
  --arg gcc "$(gcc -dumpfullversion 2>/dev/null || echo '?')" --arg node "$(node --version 2>/dev/null || echo '?')" \
  --argjson quick "$([ $quick -eq 1 ] && echo true || echo false)" --argjson runs "$runs" \
  --argjson connect_runs "$connect_runs" --arg server_cpus "$server_cpus" --arg load_cpus "$load_cpus" \
  --arg cluster_redis "${cl_persist:-}" --argjson cluster_rate "$cluster_rate" \
  --argjson settle_cap "$settle_cap" --argjson settle_window "$settle_window" --argjson wall "$(( $(date +%s) - t_start ))" '
  def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
    else (.[length / 2 - 1] + .[length / 2]) / 2 end;
  {meta: {commit: $commit, dirty: $dirty, date: $date, stamp: $stamp, quick: $quick, runs: $runs,
          connect_runs: $connect_runs, nproc: $nproc, cpu: $cpu, memory: $mem, kernel: $kernel,
          debian: $debian, gcc: $gcc, libuv: $libuv, sqlite: $sqlite, redis: $redis,
          mosquitto: $mosquitto, node: $node, server_cpus: $server_cpus, load_cpus: $load_cpus,
          settle_cap_s: $settle_cap, settle_window_s: $settle_window, wall_s: $wall,
          cluster_redis_persistence: $cluster_redis, cluster_rate: $cluster_rate},
   figures: (group_by(.label) | map(
     (map(select(.ok))) as $ok
     | {label: .[0].label, scenario: .[0].scenario, target: (.[0].target // null),
        runs_ok: ($ok | length), runs_failed: (map(select(.ok | not)) | length),
        errors: (map(.error // empty) | unique),
        load_start: (sort_by(.run) | first | .load_start), load_end: (sort_by(.run) | last | .load_end),
        busy_pct: ([.[] | .machine_busy_pct] | {median: median, min: min, max: max}),
        first_run: (sort_by(.run) | first | del(.rss_samples_kb)),
        stats: ([$ok[] | to_entries[] | select(.value | type == "number") | .key] | unique
          | map(. as $k | {key: $k, value: ([$ok[] | .[$k] | select(type == "number")]
              | {median: median, min: min, max: max})}) | from_entries),
        settled: (if any($ok[]; has("settled")) then [$ok[] | .settled] else null end),
        runs: .}))}
' "$rows" >"$out/results.json"

bench/report.sh "$out" "$docs"
echo "results: $out (wall $(( $(date +%s) - t_start )) s)" >&2
