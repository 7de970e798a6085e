#!/usr/bin/env bash
# Fairness: one organization's backlog must not delay the others. A database outage (a write lock on the SQLite file)
# during which organization "hot" queues BACKLOG events through the gateway while QUIET other organizations send RATE
# single events a second each (a quarter of them in hot's partition); then the drain. Benchmarks/fairness/fairness.py
# drives a round and prints the hot drain rate and the quiet events' accepted → stored latencies during the drain.
# Per Redis (MODES: one server, "single"; a 6-node Redis Cluster, "cluster"), three rounds, each on a fresh Redis and
# database with one release gateway and two release workers (SQLite):
#   unshared  the hot backlog alone (QUIET=0): its drain rate unshared;
#   shared    with the quiet organizations: the goal is their p99 <= 1 s and a hot drain >= 0.9 x unshared;
#   off       shared, with overflow off (OPERYN_OVERFLOW_BACKLOG_EVENTS=0, OPERYN_OVERFLOW_RATE_EVENTS=0): the quiet
#             organizations of hot's partition wait behind its backlog, as every organization did before partitions.
# Usage: scripts/bench-fairness.sh [BACKLOG] [MODES] [QUIET] [RATE]   (defaults 1000000, "single cluster", 20, 5)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config python3

backlog=${1:-1000000}
modes=${2:-single cluster}
quiet=${3:-20}
rate=${4:-5}
partitions=${OPERYN_STREAM_PARTITIONS:-16}

build_release
with_scratch fairness

# round MODE VARIANT → the RESULT line of fairness.py
round() {
    local mode=$1 variant=$2 dir="$work/$1-$2" url round_pids=() organizations=$quiet overflow=()
    mkdir -p "$dir"
    if [ "$mode" = cluster ]; then
        local first
        first=$(spare_cluster_ports 7300)
        start_redis_cluster "$dir/cluster" "$first"
        url="redis+cluster://127.0.0.1:$first,127.0.0.1:$((first + 1))"
    else
        local port
        port=$(spare_port 6470)
        redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly yes --appendfsync everysec \
            --maxmemory-policy noeviction --daemonize no --loglevel warning >"$dir/redis.log" 2>&1 &
        round_pids+=($!)
        wait_for_port "$port" 10
        url="redis://127.0.0.1:$port"
    fi
    [ "$variant" = unshared ] && organizations=0
    [ "$variant" = off ] && overflow=(OPERYN_OVERFLOW_BACKLOG_EVENTS=0 OPERYN_OVERFLOW_RATE_EVENTS=0)
    local common=(OPERYN_REDIS_URL=$url OPERYN_KEY_PREFIX=fair OPERYN_STREAM_PARTITIONS=$partitions OPERYN_LOG_LEVEL=warning "${overflow[@]}")
    local gateway_port
    gateway_port=$(spare_port 3601)
    env "${common[@]}" OPERYN_PORT="$gateway_port" OPERYN_BACKLOG_HIGH_WATER=1000000000 "$bin/operyn-gateway" 2>"$dir/gateway.log" &
    round_pids+=($!)
    for i in 1 2; do
        env "${common[@]}" OPERYN_DATABASE_URL="sqlite:$dir/operyn.sqlite" OPERYN_METRICS_PORT=0 OPERYN_CONSUMER_NAME="fair-$i" \
            "$bin/operyn-worker" 2>>"$dir/worker.log" &
        round_pids+=($!)
    done
    wait_for_port "$gateway_port" 30
    # The workers have made the tables.
    local deadline=$((SECONDS + 60))
    until [ -f "$dir/operyn.sqlite" ] && sqlite3 "$dir/operyn.sqlite" "SELECT 1 FROM logs LIMIT 1" >/dev/null 2>&1; do
        [ $SECONDS -ge $deadline ] && { echo "the workers made no tables in 60 s" >&2; cat "$dir/worker.log" >&2; return 1; }
        sleep 0.2
    done
    python3 Benchmarks/fairness/fairness.py "$gateway_port" "$dir/operyn.sqlite" "$backlog" "$organizations" "$rate" "$partitions" |
        grep '^RESULT'
    [ "$variant" = shared ] && env "${common[@]}" "$bin/operyn-admin" status | sed -n '/overflow/,/^$/p' >"$dir/status.txt" || true
    for pid in "${round_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${round_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_redis_cluster "$dir/cluster"
    grep -h "overflow" "$dir/worker.log" | head -3 >&2 || true
    rm -rf "$dir"
}

field() { sed -E "s/.*$1=([^ ]+).*/\1/" <<<"$2"; }

echo "fairness: a backlog of $backlog events of one organization, $quiet others at $rate events/s each, $partitions partitions"
for mode in $modes; do
    unshared=$(round "$mode" unshared)
    shared=$(round "$mode" shared)
    off=$(round "$mode" off)
    echo "[$mode] unshared: $unshared"
    echo "[$mode] shared:   $shared"
    echo "[$mode] off:      $off"
    awk -v mode="$mode" -v a="$(field drain_events_per_s "$unshared")" -v b="$(field drain_events_per_s "$shared")" \
        -v p99="$(field quiet_p99_ms "$shared")" -v off="$(field quiet_p99_ms "$off")" -v same="$(field same_partition_p99_ms "$off")" 'BEGIN {
        printf "[%s] hot drain shared/unshared %.2f x (goal >= 0.9); quiet p99 %s ms (goal <= 1000); with overflow off %s ms (hot'"'"'s partition: %s ms)\n",
            mode, (a > 0 ? b / a : 0), p99, off, same }'
done
