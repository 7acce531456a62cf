#!/usr/bin/env bash
# Starts a cluster of chat-server nodes on this machine: NODES processes (3 by default)
# sharing one PostgreSQL database and one Redis, each on its own loopback ports, and
# stops them by PID on Ctrl-C or SIGTERM (or when one of them exits).
#
#   examples/cluster/run.sh                      # 3 nodes: http://127.0.0.1:8081 .. 8083
#   NODES=6 examples/cluster/run.sh
#   IM_DATABASE_URL=postgres://me@db/im IM_REDIS_URL=redis-cluster://10.0.0.5:7000 examples/cluster/run.sh
#
# Node i serves HTTP/WebSocket on 127.0.0.1:(8080+i) and TCP on 127.0.0.1:(7100+i), with
# node id node-i; any node serves any user (see docs/scaling.md). The database is
# created if it does not exist (with createdb, when the URL is a local PostgreSQL one).
# Uploads go to one directory all nodes share, as a shared volume would in production.
set -euo pipefail
cd "$(dirname "$0")/../.."

NODES=${NODES:-3}
DATABASE=${IM_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/im_cluster}
REDIS=${IM_REDIS_URL:-redis://127.0.0.1:6379}
BIN=${CHAT_SERVER:-target/release/chat-server}
DATA=${IM_CLUSTER_DIR:-target/cluster}

# Built with PostgreSQL and Redis in it (the default build has SQLite only); quick when
# nothing changed.
if [ -z "${CHAT_SERVER:-}" ]; then
  cargo build --release -p chat-server --features cluster
fi
mkdir -p "$DATA/uploads"

# A local PostgreSQL database that does not exist yet is created.
if [[ "$DATABASE" =~ ^postgres(ql)?://([^@/]+)@([^:/]+)(:([0-9]+))?/([A-Za-z0-9_]+)$ ]]; then
  user=${BASH_REMATCH[2]} host=${BASH_REMATCH[3]} port=${BASH_REMATCH[5]:-5432} name=${BASH_REMATCH[6]}
  if command -v createdb >/dev/null &&
    ! psql -h "$host" -p "$port" -U "$user" -lqt 2>/dev/null | cut -d'|' -f1 | grep -qw "$name"; then
    createdb -h "$host" -p "$port" -U "$user" "$name"
    echo "created database $name"
  fi
fi

pids=()
stop() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    echo "stopping ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop INT TERM EXIT

for i in $(seq 1 "$NODES"); do
  "$BIN" --database "$DATABASE" --redis "$REDIS" --node-id "node-$i" \
    --http "127.0.0.1:$((8080 + i))" --tcp "127.0.0.1:$((7100 + i))" \
    --uploads "$DATA/uploads" --log "${RUST_LOG:-info}" 2>"$DATA/node-$i.log" &
  pids+=($!)
  echo "node-$i: pid $!, http://127.0.0.1:$((8080 + i)), tcp 127.0.0.1:$((7100 + i)), log $DATA/node-$i.log"
done

# Each node's /healthz, once it answers.
for i in $(seq 1 "$NODES"); do
  for _ in $(seq 1 50); do
    if health=$(curl -fsS "http://127.0.0.1:$((8080 + i))/healthz" 2>/dev/null); then
      echo "node-$i: $health"
      break
    fi
    sleep 0.2
  done
done

# Until Ctrl-C, or until any node exits.
wait -n "${pids[@]}" || true
