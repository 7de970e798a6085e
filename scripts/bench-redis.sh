#!/usr/bin/env bash
# Pipelined XADD throughput: the project's client (many concurrent tasks, auto-pipelined) against
# `redis-benchmark -P 64` with the same entry, on the same fresh Redis, in the same run.
# Usage: scripts/bench-redis.sh [ROUNDS] [COUNT] [TASKS]   (defaults 5, 500000, 512)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config

rounds=${1:-5}
count=${2:-500000}
tasks=${3:-512}

swift build -c release --product operyn-redis-bench >/dev/null
bench=.build/release/operyn-redis-bench

with_scratch bench
port=$(spare_port 6400)
# No persistence: this measures the client and the protocol, not the disk.
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no --daemonize no \
    --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for_port "$port" 10

mapfile -t fields < <("$bench" fields)
echo "entry: ${#fields[@]} field arguments, $(printf '%s' "${fields[@]}" | wc -c) bytes; $count XADDs per measurement, $rounds rounds"

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
baseline=()
client=()
for round in $(seq "$rounds"); do
    redis-cli -p "$port" del bench:baseline:stream >/dev/null
    rps=$(redis-benchmark -p "$port" -P 64 -c 50 -n "$count" -q XADD bench:baseline:stream '*' "${fields[@]}" \
        | tr '\r' '\n' | grep -oE '[0-9.]+ requests per second' | tail -n 1 | cut -d' ' -f1)
    baseline+=("${rps%.*}")
    client+=("$("$bench" xadd "redis://127.0.0.1:$port" "$tasks" "$count")")
    echo "round $round: redis-benchmark -P 64: ${baseline[-1]} XADD/s   client ($tasks tasks): ${client[-1]} XADD/s"
done
b=$(printf '%s\n' "${baseline[@]}" | median)
c=$(printf '%s\n' "${client[@]}" | median)
ratio=$(awk -v c="$c" -v b="$b" 'BEGIN {printf "%.2f", c / b}')
echo "median: redis-benchmark -P 64 $b XADD/s, client $c XADD/s, ratio $ratio (target >= 0.50)"
