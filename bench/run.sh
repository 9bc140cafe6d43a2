#!/usr/bin/env bash
# bench/run.sh: the realtime benchmarks of docs/benchmarks.md, switchboard
# against its peers in one run on one machine:
#
#   Redis pub/sub          Debian redis-server, RESP over TCP, AUTH with a password
#   mosquitto              Debian mosquitto, MQTT 3.1.1 QoS 0 over WebSocket
#                          (listener `protocol websockets`, set_tcp_nodelay true),
#                          username/password
#
# It installs what is missing (apt), builds `switchboard` (Release), starts the
# peers on 127.0.0.1 with their own config files in a temp dir, runs every
# `switchboard bench` scenario with bounded counts and times, stops what it
# started (trap), and rewrites its part of docs/benchmarks.md (between the
# "bench/run.sh" markers; the rest of the file is left alone) and the charts
# docs/benchmarks.png.
#
# Usage: bench/run.sh [--quick] [--rounds N] [--no-docs] [--only LIST]
#   --quick      every scenario in its few-second mode, one round, no docs (checks the script)
#   --rounds N   rounds per throughput case, best kept (default 3: the machine is shared)
#   --no-docs    print the tables, leave docs/ alone
#   --only LIST  comma-separated subset of: idle,fanout,connect,durable,ai
# Environment: KEEP_WORK=1 keeps the temp dir (configs, logs, raw results); SERVER_CPUS (default 0) and LOAD_CPUS (default 1) pin the server
# under test and the load generator; BUILD_DIR (default build-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0; rounds=3; docs=1; only="idle,fanout,connect,durable,ai"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; rounds=1; docs=0 ;;
    --rounds) rounds=$2; shift ;;
    --no-docs) docs=0 ;;
    --only) only=$2; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$only," == *",$1,"* ]]; }

server_cpus=${SERVER_CPUS:-0}
load_cpus=${LOAD_CPUS:-1}
build=${BUILD_DIR:-build-bench}

# ---- dependencies and build --------------------------------------------------
scripts/deps.sh build
peer_pkgs=(redis-server redis-tools mosquitto gnuplot-nox jq)
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
# Debian starts the packaged services; we run our own instances on free
# ports, so those are left as they are.

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" --target switchboard >/dev/null
bin=$root/$build/switchboard

# ---- peers -----------------------------------------------------------------------
work=$(mktemp -d /tmp/swbench-run-XXXXXX)
chmod 755 "$work" # mosquitto drops to its own user after reading its config
redis_pid=""; mq_pid=""
cleanup() {
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
stop_redis() { kill "$redis_pid"; wait "$redis_pid" 2>/dev/null || true; redis_pid=""; }
start_mosquitto() {
  taskset -c "$server_cpus" mosquitto -c "$work/mosquitto.conf" 2>>"$work/mosquitto.log" &
  mq_pid=$!
  wait_port "$mq_port"
}
stop_mosquitto() { kill "$mq_pid"; wait "$mq_pid" 2>/dev/null || true; mq_pid=""; }

# ---- running -----------------------------------------------------------------------
results=$work/results.jsonl
commands=$work/commands.txt
: >"$results"; : >"$commands"
q=(); [ $quick -eq 1 ] && q=(--quick)
sw_pin=(--server-cpus "$server_cpus" --load-cpus "$load_cpus")
redis_args() { echo --target redis --port "$redis_port" --password "$password" --server-pid "$redis_pid" --load-cpus "$load_cpus"; }
mq_args() { echo --target mosquitto --port "$mq_port" --user bench --password "$password" --server-pid "$mq_pid" --load-cpus "$load_cpus"; }

# bench LABEL METRIC(max:key|min:key) N_ROUNDS ARGS...: runs `switchboard bench
# ARGS --json` N_ROUNDS times and keeps, per output line kind (durable prints
# one per sync mode), the round with the best METRIC. Errors stop the script.
bench() {
  local label=$1 metric=$2 n=$3; shift 3
  local cmd=("$bin" bench "$@" "${q[@]}" --json)
  local out=$work/round.jsonl; : >"$out"
  # The command as documented: the binary relative to the repo, secrets and ports as variables.
  printf '%s\n' "${cmd[*]}" | sed -e "s#$bin#$build/switchboard#" -e "s#$password#\$PASSWORD#g" \
    -e "s#--port $redis_port#--port \$REDIS_PORT#" -e "s#--port $mq_port#--port \$MQTT_WS_PORT#" \
    -e "s#--server-pid [0-9]*#--server-pid \$PID#" -e "s# --json##" >>"$commands"
  for r in $(seq "$n"); do
    echo "  $label, round $r/$n" >&2
    if ! "${cmd[@]}" >>"$out"; then
      # Overload rows (ai beyond what the box sustains) are reported with
      # their error; anything else failing stops the run.
      if [ -n "${tolerate:-}" ]; then echo "  ($label failed; reported as such)" >&2; break; fi
      echo "bench/run.sh: $label failed:" >&2; cat "$out" >&2; exit 1
    fi
  done
  local key=${metric#*:} dir=${metric%%:*}
  jq -c -s --arg k "$key" --arg d "$dir" --arg lab "$label" '
    group_by(.sync // "") | map(sort_by(.[$k]) | (if $d == "max" then last else first end) + {label: $lab}) | .[]
  ' "$out" >>"$results"
}

idle_n=10000; fan_subs=1000
[ $quick -eq 1 ] && { idle_n=200; fan_subs=50; }

if want idle; then
  echo "idle: $idle_n connections, each authenticated with one channel" >&2
  # Fresh peers, so their RSS growth is the connections' and nothing else's.
  start_redis; start_mosquitto
  bench idle-switchboard min:rss_per_conn_bytes 1 idle --connections "$idle_n" "${sw_pin[@]}"
  # shellcheck disable=SC2046
  bench idle-redis min:rss_per_conn_bytes 1 idle --connections "$idle_n" $(redis_args)
  # shellcheck disable=SC2046
  bench idle-mosquitto min:rss_per_conn_bytes 1 idle --connections "$idle_n" $(mq_args)
  stop_redis; stop_mosquitto
fi

if want fanout; then
  echo "fanout: 1 publisher -> $fan_subs subscribers" >&2
  start_redis; start_mosquitto
  bench fanout-switchboard max:deliveries_per_s "$rounds" fanout --subscribers "$fan_subs" "${sw_pin[@]}"
  # shellcheck disable=SC2046
  bench fanout-redis max:deliveries_per_s "$rounds" fanout --subscribers "$fan_subs" $(redis_args)
  # shellcheck disable=SC2046
  bench fanout-mosquitto max:deliveries_per_s "$rounds" fanout --subscribers "$fan_subs" $(mq_args)
  # The same switchboard without SQLite: what storage costs the fan-out.
  bench fanout-switchboard-memory max:deliveries_per_s "$rounds" fanout --subscribers "$fan_subs" --memory "${sw_pin[@]}"
  # Latency with one message in flight: the fan-out itself, without queueing.
  w1=(--window 1 --seconds 5 --warmup 1); [ $quick -eq 1 ] && w1=(--window 1)
  bench fanout1-switchboard min:latency_p99_ms 1 fanout --subscribers "$fan_subs" "${w1[@]}" "${sw_pin[@]}"
  # shellcheck disable=SC2046
  bench fanout1-redis min:latency_p99_ms 1 fanout --subscribers "$fan_subs" "${w1[@]}" $(redis_args)
  # shellcheck disable=SC2046
  bench fanout1-mosquitto min:latency_p99_ms 1 fanout --subscribers "$fan_subs" "${w1[@]}" $(mq_args)
  stop_redis; stop_mosquitto
fi

if want connect; then
  echo "connect: JWT connect storm" >&2
  bench connect max:connects_per_s "$rounds" connect "${sw_pin[@]}"
  # Load on both cores, to see how far the storm goes when the load has more room.
  bench connect-2procs max:connects_per_s "$rounds" connect --procs 2
  # Bare WebSocket clients (upgrade with the JWT, wait for CONNECTED): the
  # server's side of the storm without libswitchboard's per-connection cost.
  bench connect-raw max:connects_per_s "$rounds" connect --raw "${sw_pin[@]}"
  bench connect-raw-2procs max:connects_per_s "$rounds" connect --raw --procs 2
fi

if want durable; then
  echo "durable: SQLite FULL and NORMAL" >&2
  # The window trades ACK latency for throughput (group commit): the
  # default (8 x 16) and one step either side.
  bench durable max:messages_per_s "$rounds" durable
  if [ $quick -eq 0 ]; then
    bench durable-w8 max:messages_per_s "$rounds" durable --window 8
    bench durable-w32 max:messages_per_s "$rounds" durable --window 32
  fi
fi

# floor LABEL N_ROUNDS ARGS...: bench/floor.c (plain TCP in the ai shape, no
# server) N_ROUNDS times; keeps the round with the median p99 and adds the
# lowest and highest p99 seen (p99_min_ms, p99_max_ms): the floor varies.
floor() {
  local label=$1 n=$2; shift 2
  local out=$work/floor.jsonl; : >"$out"
  printf '%s\n' "$build/floor $*" >>"$commands"
  for r in $(seq "$n"); do
    echo "  $label, round $r/$n" >&2
    "$root/$build/floor" "$@" --json >>"$out"
  done
  jq -c -s --arg lab "$label" 'sort_by(.latency_p99_ms) | .[(length - 1) / 2 | floor] +
    {label: $lab, p99_min_ms: first.latency_p99_ms, p99_max_ms: last.latency_p99_ms}' "$out" >>"$results"
}

if want ai; then
  echo "ai: streams of appends" >&2
  gcc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror bench/floor.c -o "$build/floor"
  if [ $quick -eq 1 ]; then
    bench ai min:latency_p99_ms 1 ai
    floor floor 1 --streams 50 --rate 10 --seconds 1
  else
    # What the machine itself costs for issue 4's shape: plain TCP, no server.
    floor floor-1000x50-a1000 3 --streams 1000 --rate 50 --agents 1000
    floor floor-1000x50-a2 3 --streams 1000 --rate 50 --agents 2
    # Issue 4's shape first, then smaller ones to find what this box sustains;
    # then the same with the appends of every stream on one connection per
    # load process, as examples/ai-chat's agent server sends them.
    tolerate=1 bench ai-1000x50 min:latency_p99_ms 1 ai --streams 1000 --rate 50 --procs 2
    tolerate=1 bench ai-1000x20 min:latency_p99_ms 1 ai --streams 1000 --rate 20 --procs 2
    tolerate=1 bench ai-1000x10 min:latency_p99_ms 1 ai --streams 1000 --rate 10 --procs 2
    tolerate=1 bench ai-1000x5 min:latency_p99_ms 1 ai --streams 1000 --rate 5 --procs 2
    tolerate=1 bench ai-1000x2 min:latency_p99_ms 1 ai --streams 1000 --rate 2 --procs 2
    tolerate=1 bench ai-200x20 min:latency_p99_ms 1 ai --streams 200 --rate 20 --procs 2
    tolerate=1 bench ai-100x10 min:latency_p99_ms 1 ai --streams 100 --rate 10 --procs 2
    tolerate=1 bench ai-1000x50-a2 min:latency_p99_ms 1 ai --streams 1000 --rate 50 --procs 2 --agents 2
    tolerate=1 bench ai-1000x35-a2 min:latency_p99_ms 1 ai --streams 1000 --rate 35 --procs 2 --agents 2
    tolerate=1 bench ai-1000x20-a2 min:latency_p99_ms 1 ai --streams 1000 --rate 20 --procs 2 --agents 2
  fi
fi

# ---- report ------------------------------------------------------------------------
bench/report.sh "$results" "$commands" "$work" "$docs" "$server_cpus" "$load_cpus" "$rounds"
