#!/usr/bin/env bash
# Runs the whole service on one machine: installs what is missing, builds, starts a Redis with
# appendonly under ./data when none answers at OPERYN_REDIS_URL, then operyn-gateway (port 3001)
# and one operyn-worker (SQLite under ./data). Ctrl-C stops all of them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config sqlite3

export OPERYN_REDIS_URL=${OPERYN_REDIS_URL:-redis://127.0.0.1:6379}
export OPERYN_PORT=${OPERYN_PORT:-3001}
export OPERYN_DATABASE_URL=${OPERYN_DATABASE_URL:-sqlite:./data/operyn.sqlite}
export OPERYN_LOG_FORMAT=${OPERYN_LOG_FORMAT:-text}
mkdir -p data/redis

build_release

pids=()
redis_pid=""
# Gateway and worker stop first (the worker finishes its batch), Redis last.
stop() {
    trap - INT TERM EXIT
    echo "stopping…"
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "$redis_pid" ]; then
        kill -TERM "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    fi
    exit 0
}
trap stop INT TERM EXIT

if redis-cli -u "$OPERYN_REDIS_URL" ping >/dev/null 2>&1; then
    echo "using the Redis at $OPERYN_REDIS_URL"
else
    port=$(printf '%s' "$OPERYN_REDIS_URL" | sed -E 's#^redis://([^@]*@)?[^:/]*:?([0-9]*).*#\2#')
    port=${port:-6379}
    echo "starting redis-server on 127.0.0.1:$port (appendonly, data in ./data/redis)"
    # Its own session, so a Ctrl-C reaches it only through stop(), after the worker.
    setsid redis-server --port "$port" --bind 127.0.0.1 --dir "$PWD/data/redis" --appendonly yes --appendfsync everysec \
        --maxmemory-policy noeviction --daemonize no --loglevel warning --logfile "$PWD/data/redis/redis.log" &
    redis_pid=$!
    wait_for_port "$port" 10
fi

"$bin/operyn-gateway" &
pids=($! "${pids[@]}")
"$bin/operyn-worker" &
pids=($! "${pids[@]}")

wait_for_port "$OPERYN_PORT" 30 || true
cat <<TXT

operyn is running: gateway on http://127.0.0.1:$OPERYN_PORT, worker storing into $OPERYN_DATABASE_URL.
Try:
  curl -i -X POST http://127.0.0.1:$OPERYN_PORT/events/logs -H 'Content-Type: application/json' \\
    -d '{"service":"api-gateway","level":"error","message":"Upstream timeout connecting to auth-service"}'
Inspect and manage it (queue, organizations, API keys, dead letters):
  $bin/operyn-admin status
  $bin/operyn-admin keys create acme
Ctrl-C stops everything.
TXT
wait -n "${pids[@]}" || true
stop
