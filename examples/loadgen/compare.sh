#!/usr/bin/env bash
# Compares our chat server with the raw WebSocket ceiling and socket.io, all measured
# from outside by the load generator over loopback. Each server runs pinned to core 0,
# the generator to core 1; every (system, scenario) gets a fresh server, stopped by PID
# afterwards. Prints a table of every figure, and its ratio to the ceiling's.
#
#   examples/loadgen/compare.sh --quick            # small sizes, about a minute
#   examples/loadgen/compare.sh                    # the full matrix (about 12 minutes)
#
# Options:
#   --quick                  small sizes (checks the script works)
#   --systems "A B ..."      systems to run, from: ceiling socketio im im-mem im-pg im-tcp
#                            [default: "ceiling socketio im im-mem"]
#                            im: chat-server on SQLite (a fresh file per run); im-mem: on
#                            `--database memory`; im-pg: on PostgreSQL (direct-sends rows
#                            only; the database is dropped and created before each run);
#                            im-tcp: on SQLite, over the TCP transport
#   --huge                   also idle with 19,000 connections (ceiling, im; the generator
#                            split in two processes)
#   --only REGEX             only the rows whose label matches (bash regex), e.g. 'idle'
#   --out FILE               also write the JSON lines there
#   --no-build               use the binaries already built
# Environment: CARGO_TARGET_DIR as for cargo; LOADGEN_TIMEOUT (seconds one generator
# run may take before it is killed) [default: 900]; IM_PG_URL (im-pg's database)
# [default: postgres://postgres@127.0.0.1:5432/imbench]; PSQL_ARGS (how psql reaches the
# server to drop and create it) [default: "-h 127.0.0.1 -U postgres -d test"].
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODE=full
SYSTEMS="ceiling socketio im im-mem"
HUGE=0
OUT=""
ONLY=""
BUILD=1
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    --systems) SYSTEMS="$2"; shift ;;
    --huge) HUGE=1 ;;
    --out) OUT="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
LOADGEN_TIMEOUT="${LOADGEN_TIMEOUT:-900}"
IM_PG_URL="${IM_PG_URL:-postgres://postgres@127.0.0.1:5432/imbench}"
PG_DB="${IM_PG_URL##*/}"
PG_DB="${PG_DB%%\?*}"
read -r -a PSQL <<<"${PSQL_ARGS:--h 127.0.0.1 -U postgres -d test}"

for tool in jq node npm taskset; do
  command -v "$tool" >/dev/null || { echo "compare.sh: needs $tool (Debian: apt-get install jq nodejs npm util-linux)" >&2; exit 1; }
done
if [[ " $SYSTEMS " == *" im-pg "* ]] && ! command -v psql >/dev/null; then
  echo "compare.sh: im-pg needs psql (Debian: apt-get install postgresql-client)" >&2; exit 1
fi

BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release"
if [ "$BUILD" = 1 ]; then
  (cd "$ROOT" && cargo build --release -p chat-server -p loadgen)
fi
if [ ! -d "$HERE/socketio/node_modules" ]; then
  (cd "$HERE/socketio" && npm ci --no-audit --no-fund)
fi

WORK="$(mktemp -d -t loadgen-compare.XXXXXX)"
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
SERVER_PID=""
SERVER_DIR=""
LOADGEN_PID=""

stop_server() {
  if [ -n "$SERVER_PID" ]; then
    if kill -0 "$SERVER_PID" 2>/dev/null; then
      kill -TERM "$SERVER_PID" 2>/dev/null || true
      for _ in $(seq 1 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
      done
      if kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "compare.sh: server $SERVER_PID ignored SIGTERM for 10 s; killing it" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
      fi
    fi
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
  if [ -n "$SERVER_DIR" ]; then
    rm -rf "$SERVER_DIR"
    SERVER_DIR=""
  fi
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$LOADGEN_PID" ] && kill -0 "$LOADGEN_PID" 2>/dev/null; then
    kill -TERM "$LOADGEN_PID" 2>/dev/null || true
    wait "$LOADGEN_PID" 2>/dev/null || true
  fi
  stop_server
  if [ -n "$OUT" ] && [ -s "$RESULTS" ]; then cp "$RESULTS" "$OUT"; fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Waits up to 30 s for a line matching $2 in file $1 from server $SERVER_PID; prints it.
wait_for_line() {
  local file="$1" pattern="$2" line=""
  for _ in $(seq 1 300); do
    line="$(grep -m1 -E "$pattern" "$file" 2>/dev/null || true)"
    if [ -n "$line" ]; then echo "$line"; return 0; fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "compare.sh: the server did not print /$pattern/; its stderr:" >&2
  tail -20 "$WORK/server.err" >&2 || true
  return 1
}

# A fresh, empty PostgreSQL database for im-pg.
fresh_pg_database() {
  psql "${PSQL[@]}" -q -v ON_ERROR_STOP=1 \
    -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" -c "CREATE DATABASE $PG_DB" >/dev/null
}

# Starts system $1 ("im*" variant $2: "cheap" or "flood" password hashing) pinned to
# core 0; sets ADDR.
start_server() {
  local system="$1" variant="${2:-cheap}" line
  : > "$WORK/server.out"
  : > "$WORK/server.err"
  case "$system" in
    ceiling)
      taskset -c 0 "$BIN/ceiling" --listen 127.0.0.1:0 >"$WORK/server.out" 2>"$WORK/server.err" &
      SERVER_PID=$!
      line="$(wait_for_line "$WORK/server.out" '^ceiling listening on ws://')" || return 1
      ADDR="${line#ceiling listening on ws://}"
      ;;
    socketio)
      taskset -c 0 node "$HERE/socketio/server.js" --port 0 >"$WORK/server.out" 2>"$WORK/server.err" &
      SERVER_PID=$!
      line="$(wait_for_line "$WORK/server.out" '^socket.io listening on ')" || return 1
      ADDR="127.0.0.1:${line#socket.io listening on }"
      ;;
    im|im-mem|im-pg|im-tcp)
      SERVER_DIR="$(mktemp -d "$WORK/im.XXXXXX")"
      local db
      case "$system" in
        im-mem) db="memory" ;;
        im-pg) fresh_pg_database || return 1; db="$IM_PG_URL" ;;
        *) db="sqlite://$SERVER_DIR/bench.db?mode=rwc" ;;
      esac
      local args=(--http 127.0.0.1:0 --tcp 127.0.0.1:0 --database "$db"
        --uploads "$SERVER_DIR/uploads" --direct-policy anyone --max-group-members 20000
        --sends-per-second 0 --logins-per-minute 0 --auth-per-address-per-minute 0 --log warn)
      if [ "$variant" = cheap ]; then args+=(--hash-memory-kib 1024 --hash-iterations 1); fi
      taskset -c 0 "$BIN/chat-server" "${args[@]}" >"$WORK/server.out" 2>"$WORK/server.err" &
      SERVER_PID=$!
      if [ "$system" = im-tcp ]; then
        line="$(wait_for_line "$WORK/server.out" '^chat-server listening on tcp://')" || return 1
        ADDR="${line#chat-server listening on tcp://}"
      else
        line="$(wait_for_line "$WORK/server.out" '^chat-server listening on http://')" || return 1
        ADDR="${line#chat-server listening on http://}"
      fi
      ;;
    *) echo "compare.sh: unknown system $system" >&2; return 1 ;;
  esac
}

# run LABEL SYSTEM SCENARIO [ARGS...]: a fresh server, one generator run, the server
# stopped; the JSON line (labelled) appended to $RESULTS. HASH=flood before it: the
# im server with the default password-hash cost.
run() {
  local label="$1" system="$2" scenario="$3"
  shift 3
  if [ -n "$ONLY" ] && ! [[ "$label" =~ $ONLY ]]; then return 0; fi
  local variant="${HASH:-cheap}"
  echo "== $label | $system" >&2
  if ! start_server "$system" "$variant"; then
    stop_server
    jq -cn --arg l "$label" --arg s "$system" --arg c "$scenario" \
      '{label:$l, system:$s, scenario:$c, complete:false, error:"the server did not start"}' >>"$RESULTS"
    return 0
  fi
  local lg_system="$system" transport=ws
  case "$system" in
    im-tcp) lg_system=im; transport=tcp ;;
    im-*) lg_system=im ;;
  esac
  # PostgreSQL is part of im-pg: its CPU does not count as other processes' disturbing.
  local extra=()
  if [ "$system" = im-pg ]; then
    local postmaster
    postmaster="$(pgrep -o -x postgres || true)"
    if [ -n "$postmaster" ]; then extra=(--system-pids "$postmaster"); fi
  fi
  local status=0 started=$SECONDS
  timeout --signal=TERM --kill-after=10 "$LOADGEN_TIMEOUT" \
    taskset -c 1 "$BIN/loadgen" "$scenario" --system "$lg_system" --transport "$transport" \
    --addr "$ADDR" --server-pid "$SERVER_PID" "${extra[@]}" "$@" >"$WORK/loadgen.out" &
  LOADGEN_PID=$!
  wait "$LOADGEN_PID" || status=$?
  LOADGEN_PID=""
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "compare.sh: the $system server died during $label; its stderr:" >&2
    tail -20 "$WORK/server.err" >&2 || true
  fi
  stop_server
  local line
  line="$(grep -m1 '^{' "$WORK/loadgen.out" || true)"
  if [ -n "$line" ]; then
    echo "$line" | jq -c --arg l "$label" --arg s "$system" --argjson rc "$status" \
      --argjson secs "$((SECONDS - started))" '. + {label:$l, system:$s, exit:$rc, run_s:$secs}' >>"$RESULTS"
    echo "$line"
  else
    jq -cn --arg l "$label" --arg s "$system" --arg c "$scenario" --argjson rc "$status" \
      '{label:$l, system:$s, scenario:$c, complete:false, exit:$rc, error:"no result line"}' >>"$RESULTS"
  fi
}

has() { case " $SYSTEMS " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# A figure of the latest result of system $1 in row $2 (empty if none).
figure() {
  jq -r --arg s "$1" --arg l "$2" --arg f "$3" \
    'select(.system==$s and .label==$l) | .[$f] // empty' "$RESULTS" | tail -1
}

if [ "$MODE" = quick ]; then
  IDLE=200; SETTLE=1
  M=100; K=200; BIG_M=""; BIG_K=""
  PACED_M=100; PACED_RATE=20; PACED_S=3
  SLOW_M=100; SLOW_K=400; SLOW_P=2
  DS1_K=200; DS32=8; DS32_K=20; DS512=32; DS512_K=10; PIPE_K=500
  OFFLINE=500; STORM=32; STORM_C=8; FLOOD=32; FLOOD_C=8; FLOOD_AFTER=2
else
  IDLE=1000; SETTLE=5
  # K: enough for the ceiling's burst to last about two seconds.
  M=1000; K=7000; BIG_M="${LOADGEN_BIG_M-10000}"; BIG_K=200
  PACED_M=1000; PACED_RATE=100; PACED_S=20
  # slow-consumer: a stalled im member's socket buffers (loopback) and 1,024-frame session
  # queue hold ~13,200 messages (measured: resync after 13,184); 2,000 or 5,000 never
  # reach the slow-consumer handling of any server.
  SLOW_M=1000; SLOW_K=15000; SLOW_P=1
  DS1_K=2000; DS32=32; DS32_K=200; DS512=512; DS512_K=20; PIPE_K=10000
  OFFLINE=10000; STORM=320; STORM_C=32; FLOOD=320; FLOOD_C=32; FLOOD_AFTER=10
fi

im_like() { case "$1" in im|im-mem|im-tcp) return 0 ;; *) return 1 ;; esac; }

START=$(date +%s)
for system in $SYSTEMS; do
  if [ "$system" != im-pg ]; then
    run "idle N=$IDLE" "$system" idle --conns "$IDLE" --settle "$SETTLE"
    if im_like "$system"; then
      run "idle N=$IDLE resume (logged in first)" "$system" idle --conns "$IDLE" --settle "$SETTLE" --resume
      run "idle N=$IDLE no hello" "$system" idle --conns "$IDLE" --settle "$SETTLE" --no-hello
    fi
    if [ "$HUGE" = 1 ] && { [ "$system" = ceiling ] || [ "$system" = im ]; }; then
      run "idle N=19000 (2 generator processes)" "$system" idle --conns 19000 --settle "$SETTLE" \
        --max-conns-per-process 10000
    fi
    run "group-burst M=$M K=$K" "$system" group-burst --members "$M" --messages "$K"
    if [ -n "$BIG_M" ]; then
      run "group-burst M=$BIG_M K=$BIG_K" "$system" group-burst --members "$BIG_M" --messages "$BIG_K"
    fi
    run "group-paced M=$PACED_M R=$PACED_RATE/s S=${PACED_S}s" "$system" group-paced \
      --members "$PACED_M" --rate "$PACED_RATE" --duration "$PACED_S"
    run "slow-consumer M=$SLOW_M K=$SLOW_K P=$SLOW_P%" "$system" slow-consumer \
      --members "$SLOW_M" --messages "$SLOW_K" --stalled-percent "$SLOW_P"
  fi
  case "$system" in
    im|im-mem|im-pg|im-tcp)
      run "direct-sends S=1 K=$DS1_K W=1" "$system" direct-sends --senders 1 --messages "$DS1_K" --window 1
      run "direct-sends S=$DS32 K=$DS32_K W=1" "$system" direct-sends --senders "$DS32" --messages "$DS32_K" --window 1
      ds512="direct-sends S=$DS512 K=$DS512_K W=1"
      run "$ds512" "$system" direct-sends --senders "$DS512" --messages "$DS512_K" --window 1
      if [ "$system" = im ]; then
        run "direct-sends S=1 K=$PIPE_K W=64 (pipelined)" "$system" direct-sends --senders 1 \
          --messages "$PIPE_K" --window 64
        MAX_RATE="$(figure "$system" "$ds512" sends_per_sec)"
        if [ -n "$MAX_RATE" ] && [ "$MAX_RATE" != null ]; then
          HALF="$(jq -n --argjson r "$MAX_RATE" '($r / 2 * 10 | floor) / 10')"
          run "direct-sends S=$DS512 K=$DS512_K at half max (open loop)" "$system" direct-sends \
            --senders "$DS512" --messages "$DS512_K" --rate "$HALF"
        fi
      fi
      ;;
  esac
  case "$system" in
    im|im-mem) run "offline-sync N=$OFFLINE" "$system" offline-sync --messages "$OFFLINE" ;;
  esac
  if [ "$system" = im ]; then
    HASH=flood run "connect-storm N=$STORM C=$STORM_C (default hash)" "$system" connect-storm \
      --users "$STORM" --concurrency "$STORM_C"
    HASH=flood run "login-flood N=$FLOOD C=$FLOOD_C (default hash)" "$system" login-flood \
      --logins "$FLOOD" --concurrency "$FLOOD_C" --after "$FLOOD_AFTER"
  fi
done
END=$(date +%s)

echo >&2
echo "compare.sh: $MODE run, $((END - START)) s; servers on core 0, generator on core 1" >&2
# shellcheck disable=SC2086
node "$HERE/table.js" "$RESULTS" $SYSTEMS
