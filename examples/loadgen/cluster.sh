#!/usr/bin/env bash
# Cluster mode measured from outside: one group of M members spread over 1 node and over
# N nodes (chat-server --redis, all on one PostgreSQL database), the nodes pinned to
# core 0 and the generator to core 1. For each node count: a burst (deliveries/s, server
# CPU per delivery summed over the nodes, Redis commands per message) and a paced run
# (push latency p50/p99). Each run gets a fresh database, a fresh Redis of its own (so
# its command counts are the run's alone) and fresh nodes, stopped by PID afterwards.
#
#   examples/loadgen/cluster.sh                    # 1 and 3 nodes, 1,000 members
#   examples/loadgen/cluster.sh --nodes "1 2 3" --members 1000 --messages 3000
#
# Options:
#   --nodes "A B ..."   node counts [default: "1 3"]
#   --members M         group members [default: 1000]
#   --messages K        messages in the burst [default: 3000]
#   --rate R            messages per second in the paced run [default: 50]
#   --seconds S         length of the paced run [default: 10]
#   --idle CONNS        instead: CONNS idle authenticated WebSocket connections spread over
#                       the last node count of --nodes, held --idle-seconds (the generator
#                       splits itself into processes of 16,000), for RSS per connection
#   --idle-seconds S    how long the idle connections are held [default: 300]
#                       (the idle run's database has synchronous_commit off: it measures
#                       memory, and the registrations would otherwise take long)
#   --out FILE          also write the JSON lines there
#   --no-build          use the binaries already built
# Environment: IM_PG_URL [default: postgres://postgres@127.0.0.1:5432/imcluster],
# PSQL_ARGS [default: "-h 127.0.0.1 -U postgres -d test"], CARGO_TARGET_DIR.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
NODES="1 3"
MEMBERS=1000
MESSAGES=3000
RATE=50
SECONDS_PACED=10
OUT=""
BUILD=1
IDLE=0
IDLE_SECONDS=300
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES="$2"; shift ;;
    --members) MEMBERS="$2"; shift ;;
    --messages) MESSAGES="$2"; shift ;;
    --rate) RATE="$2"; shift ;;
    --seconds) SECONDS_PACED="$2"; shift ;;
    --idle) IDLE="$2"; shift ;;
    --idle-seconds) IDLE_SECONDS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "cluster.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
IM_PG_URL="${IM_PG_URL:-postgres://postgres@127.0.0.1:5432/imcluster}"
PG_DB="${IM_PG_URL##*/}"
read -r -a PSQL <<<"${PSQL_ARGS:--h 127.0.0.1 -U postgres -d test}"
for tool in jq taskset psql redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "cluster.sh: needs $tool" >&2; exit 1; }
done
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p chat-server -p loadgen --features chat-server/cluster)
fi

WORK="$(mktemp -d -t loadgen-cluster.XXXXXX)"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
PIDS=()
REDIS_PID=""

stop_all() {
  if [ ${#PIDS[@]} -gt 0 ]; then
    kill -TERM "${PIDS[@]}" 2>/dev/null || true
    wait "${PIDS[@]}" 2>/dev/null || true
    PIDS=()
  fi
  if [ -n "$REDIS_PID" ]; then
    kill -TERM "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=""
  fi
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_all
  if [ -n "$OUT" ] && [ -s "$RESULTS" ]; then cp "$RESULTS" "$OUT"; fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a fresh Redis and $1 nodes on a fresh database; sets ADDRS, NODE_PIDS, REDIS_PORT.
start_cluster() {
  local n="$1" i line
  psql "${PSQL[@]}" -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB" >/dev/null
  if [ "$IDLE" -gt 0 ]; then
    # The idle run measures memory held; its 100,000 registrations would otherwise wait
    # a quarter of an hour on this disk's fsyncs.
    psql "${PSQL[@]}" -q -c "ALTER DATABASE $PG_DB SET synchronous_commit = off" >/dev/null
  fi
  REDIS_PORT="$(free_port)"
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$WORK" >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  until redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; do sleep 0.05; done
  ADDRS=""
  NODE_PIDS=""
  for i in $(seq 1 "$n"); do
    : > "$WORK/node$i.out"
    taskset -c 0 "$BIN/chat-server" --http 127.0.0.1:0 --tcp 127.0.0.1:0 \
      --database "$IM_PG_URL" --database-pool "$(( 90 / n > 32 ? 32 : 90 / n ))" --redis "redis://127.0.0.1:$REDIS_PORT" --node-id "node-$i" \
      --uploads "$WORK/uploads" --direct-policy anyone --max-group-members 20000 \
      --sends-per-second 0 --logins-per-minute 0 --auth-per-address-per-minute 0 \
      --hash-memory-kib 1024 --hash-iterations 1 --log warn \
      >"$WORK/node$i.out" 2>"$WORK/node$i.err" &
    PIDS+=($!)
    NODE_PIDS="${NODE_PIDS:+$NODE_PIDS,}$!"
    for _ in $(seq 1 300); do
      line="$(grep -m1 '^chat-server listening on http://' "$WORK/node$i.out" || true)"
      [ -n "$line" ] && break
      sleep 0.1
    done
    [ -n "$line" ] || { echo "cluster.sh: node $i did not start" >&2; tail "$WORK/node$i.err" >&2; return 1; }
    ADDRS="${ADDRS:+$ADDRS,}${line#chat-server listening on http://}"
  done
}

# run LABEL NODES SCENARIO [ARGS...]
run() {
  local label="$1" n="$2" scenario="$3" postmaster
  shift 3
  echo "== $label ($n node(s))" >&2
  start_cluster "$n"
  postmaster="$(pgrep -o -x postgres || true)"
  local status=0
  taskset -c 1 "$BIN/loadgen" "$scenario" --system im --addr "$ADDRS" \
    --server-pid "$NODE_PIDS" --redis "127.0.0.1:$REDIS_PORT" \
    --system-pids "${postmaster:+$postmaster,}$REDIS_PID" "$@" >"$WORK/loadgen.out" || status=$?
  jq -c --arg l "$label" --argjson n "$n" '. + {label: $l, nodes: $n}' "$WORK/loadgen.out" >>"$RESULTS" || true
  [ "$status" = 0 ] || echo "cluster.sh: $label exited with $status" >&2
  # Each node's CPU time over its whole life (set-up included), to see where it went.
  local pid ticks=()
  for pid in "${PIDS[@]}"; do
    ticks+=("$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo '?')")
  done
  echo "cluster.sh: $label, CPU ticks (1/100 s) per node over its life: ${ticks[*]}" >&2
  stop_all
}

if [ "$IDLE" -gt 0 ]; then
  n="${NODES##* }"
  run "idle $IDLE" "$n" idle --conns "$IDLE" --settle "$IDLE_SECONDS" --setup-concurrency 128
  jq -r '"idle: \(.opened) opened, \(.failed) failed, \(.closed_by_server) closed by the servers, " +
         "open in \(.open_s) s; server RSS before \(.server_rss_before_kib) KiB, held \(.server_rss_settled_kib) KiB, " +
         "\(.kib_per_conn) KiB per connection; CPU while held \(.server_cpu_util_held) cores; " +
         "after close \(.server_rss_after_close_kib) KiB"' "$RESULTS"
  exit 0
fi

for n in $NODES; do
  run "burst $MEMBERS members" "$n" group-burst --members "$MEMBERS" --messages "$MESSAGES"
  run "paced $RATE/s" "$n" group-paced --members "$MEMBERS" --rate "$RATE" --duration "$SECONDS_PACED"
done

echo >&2
printf '%-22s %5s %13s %11s %9s %9s %12s %12s %12s %13s\n' run nodes deliveries/s "cpu us/dlv" p50_ms p99_ms redis_cmd/msg publish/msg scripts/msg "redis us/msg"
jq -r '[.label, .nodes,
        (.deliveries_per_sec // "-"),
        (.server_cpu_us_per_delivery // "-"),
        (.latency_p50_ms // "-"), (.latency_p99_ms // "-"),
        (.redis_commands_per_message // "-"),
        (.redis_publishes_per_message // "-"),
        (.redis_scripts_per_message // "-"),
        (.redis_cpu_us_per_message // "-")] | @tsv' "$RESULTS" |
  while IFS=$'\t' read -r l n d c p50 p99 r pub scr rcpu; do
    printf '%-22s %5s %13s %11s %9s %9s %12s %12s %12s %13s\n' "$l" "$n" "$d" "$c" "$p50" "$p99" "$r" "$pub" "$scr" "$rcpu"
  done
echo "(redis_cmd counts the commands scripts run inside them too; scripts/msg and publish/msg are what nodes send)" >&2
