#!/usr/bin/env bash
# A bounded soak of chat-server: starts it on free ports of 127.0.0.1 with a fresh SQLite
# database in a temporary directory, runs `loadgen soak` against it for SECONDS, stops the
# server and exits with the soak's status: 0 flat, 2 not flat or some traffic failed (the
# notes say what), 1 an error. Builds nothing.
#
#   examples/loadgen/soak.sh BIN_DIR SECONDS [loadgen soak options...]
#   examples/loadgen/soak.sh target/debug 120       # CI, with what `cargo test --workspace` built
#   examples/loadgen/soak.sh target/release 1800    # the 30-minute soak of docs/benchmarks.md
#
# BIN_DIR holds chat-server and loadgen. With taskset and two cores or more, the server
# runs on core 0 and loadgen on core 1. The server has the default password-hash cost
# and send limit; the login limits are off (the generator's connections come from 8
# loopback addresses).
# Environment: SOAK_SERVER_ARGS, more chat-server flags (say "--hash-memory-kib 1024
# --hash-iterations 1" on a slow machine); SOAK_OUT, a file to copy the JSON line to.
set -euo pipefail

if [ $# -lt 2 ]; then
  sed -n '2,17p' "$0" >&2
  exit 1
fi
BIN="$(cd "$1" && pwd)"
SECS="$2"
shift 2
for bin in chat-server loadgen; do
  [ -x "$BIN/$bin" ] || { echo "soak.sh: no $BIN/$bin (build it first)" >&2; exit 1; }
done
read -r -a EXTRA <<<"${SOAK_SERVER_ARGS:-}"

SERVER_CORE=()
LOADGEN_CORE=()
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  SERVER_CORE=(taskset -c 0)
  LOADGEN_CORE=(taskset -c 1)
fi

WORK="$(mktemp -d -t soak.XXXXXX)"
SERVER_PID=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 100); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"${SERVER_CORE[@]}" "$BIN/chat-server" --http 127.0.0.1:0 --tcp 127.0.0.1:0 \
  --database "sqlite://$WORK/soak.db?mode=rwc" --uploads "$WORK/uploads" \
  --direct-policy anyone --logins-per-minute 0 --auth-per-address-per-minute 0 \
  --log warn "${EXTRA[@]}" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!

ADDR=""
for _ in $(seq 1 300); do
  line="$(grep -m1 '^chat-server listening on http://' "$WORK/server.out" 2>/dev/null || true)"
  if [ -n "$line" ]; then ADDR="${line#chat-server listening on http://}"; break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$ADDR" ]; then
  echo "soak.sh: the server did not start; its stderr:" >&2
  tail -20 "$WORK/server.err" >&2 || true
  exit 1
fi
echo "soak.sh: chat-server (PID $SERVER_PID) on $ADDR, soak of $SECS s" >&2

status=0
# Bounded on its own; the timeout only guards against a hang (set-up is inside SECS).
timeout --signal=TERM --kill-after=10 "$((SECS + 120))" \
  "${LOADGEN_CORE[@]}" "$BIN/loadgen" soak --addr "$ADDR" --server-pid "$SERVER_PID" \
  --metrics "http://$ADDR/metrics" --seconds "$SECS" "$@" >"$WORK/soak.json" || status=$?
cat "$WORK/soak.json"
if [ -n "${SOAK_OUT:-}" ]; then cp "$WORK/soak.json" "$SOAK_OUT"; fi
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "soak.sh: the server died during the soak; its stderr:" >&2
  tail -20 "$WORK/server.err" >&2 || true
  [ "$status" -ne 0 ] || status=1
elif [ -s "$WORK/server.err" ]; then
  echo "soak.sh: the server's warnings (last 10 lines):" >&2
  tail -10 "$WORK/server.err" >&2
fi
exit "$status"
