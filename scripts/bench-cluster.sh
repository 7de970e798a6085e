#!/usr/bin/env bash
# The gateway on a Redis Cluster beside the same gateway on one Redis, in one run: batches of 100 events and single
# events from 48 organizations (their partitions spread over the masters), and the CPU each Redis process spends per
# event, read from /proc: the single Redis's, each master's and the replicas'. The spread over the masters is what
# 2 cores can show: the total cannot grow here, but a cluster on more machines adds each master's thread.
# Also what OPERYN_REDIS_WAIT_REPLICAS=1 costs (a second gateway on the cluster waiting for a replica per append).
# Usage: scripts/bench-cluster.sh [ROUNDS] [SECONDS]   (defaults 3, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config wrk

rounds=${1:-3}
seconds=${2:-10}
connections=64

build_release
with_scratch clusterbench

start_bench_redis 6420

cluster_port=$(spare_cluster_ports 7300)
start_redis_cluster "$work/cluster" "$cluster_port"
mapfile -t node_pids <"$work/cluster/pids"
pids+=("${node_pids[@]}")
cluster_url="redis+cluster://127.0.0.1:$cluster_port,127.0.0.1:$((cluster_port + 1))"

# gateway NAME URL [ENV...] → starts a gateway, sets $port_NAME and $pid_NAME
gateway() {
    local name=$1 url=$2 port
    shift 2
    port=$(spare_port $((3600 + ${#pids[@]})))
    env "$@" OPERYN_REDIS_URL="$url" OPERYN_PORT="$port" OPERYN_KEY_PREFIX="bench-$name" OPERYN_LOG_LEVEL=warning \
        OPERYN_BACKLOG_HIGH_WATER=1000000000 "$bin/operyn-gateway" 2>"$work/gateway-$name.log" &
    pids+=($!)
    printf -v "pid_$name" '%s' $!
    printf -v "port_$name" '%s' "$port"
    wait_for_port "$port" 30
}
gateway single "redis://127.0.0.1:$redis_port"
gateway cluster "$cluster_url"
gateway wait "$cluster_url" OPERYN_REDIS_WAIT_REPLICAS=1

bench_bodies "$work"

ticks_to_us() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN {printf "%.2f", t / hz * 1e6 / n}'; }
# run PORT PATH BODY → "requests_per_sec p99_us errors"
run() {
    BODY_FILE="$3" ORGS=48 wrk -t2 -c"$connections" -d"${seconds}s" --latency -s Benchmarks/wrk/post.lua "http://127.0.0.1:$1$2" |
        awk '/^RESULT/ { split($2,a,"="); split($4,b,"="); split($5,c,"="); split($6,d,"="); print a[2], b[2], c[2] + d[2] }'
}
# The cluster's masters now (their ports are the first ones `role` calls master).
master_pids() {
    local index=0 port
    for port in $(seq "$cluster_port" $((cluster_port + 5))); do
        if redis-cli -p "$port" role | head -1 | grep -q master; then echo "${node_pids[$index]} $port"; fi
        index=$((index + 1))
    done
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "warm-up…"
for name in single cluster wait; do
    port_var="port_$name"
    BODY_FILE="$work/batch.json" ORGS=48 wrk -t2 -c"$connections" -d3s -s Benchmarks/wrk/post.lua "http://127.0.0.1:${!port_var}/events/logs/batch" >/dev/null
done

declare -A results
errors=0
for round in $(seq "$rounds"); do
    for path in /events/logs/batch /events/logs; do
        body="$work/log.json"; per=1; label=single
        [ "$path" = /events/logs/batch ] && { body="$work/batch.json"; per=100; label=batch; }
        # the single Redis
        before=$(cpu_ticks "$redis_pid")
        read -r rps _ e < <(run "$port_single" "$path" "$body")
        after=$(cpu_ticks "$redis_pid")
        events=$((rps * per * seconds))
        results[$label-single]+="$((rps * per)) "
        results[$label-single-redis]+="$(ticks_to_us $((after - before)) "$events") "
        errors=$((errors + e))
        # the cluster, without and with WAIT
        for name in cluster wait; do
            port_var="port_$name"
            mapfile -t masters < <(master_pids)
            declare -A node_before=()
            for pid in "${node_pids[@]}"; do node_before[$pid]=$(cpu_ticks "$pid"); done
            read -r rps _ e < <(run "${!port_var}" "$path" "$body")
            events=$((rps * per * seconds))
            results[$label-$name]+="$((rps * per)) "
            errors=$((errors + e))
            line="round $round $label $name: $((rps * per)) events/s; Redis CPU per event:"
            master_total=0
            for master in "${masters[@]}"; do
                read -r pid port <<<"$master"
                used=$(($(cpu_ticks "$pid") - node_before[$pid]))
                master_total=$((master_total + used))
                line="$line master :$port $(ticks_to_us "$used" "$events") µs,"
                results[$label-$name-share]+="$(awk -v u="$used" -v n="$events" 'BEGIN {printf "%.4f", u / n}') "
            done
            replica_total=0
            for pid in "${node_pids[@]}"; do replica_total=$((replica_total + $(cpu_ticks "$pid") - node_before[$pid])); done
            replica_total=$((replica_total - master_total))
            line="$line masters $(ticks_to_us "$master_total" "$events") µs, replicas $(ticks_to_us "$replica_total" "$events") µs"
            results[$label-$name-masters]+="$(ticks_to_us "$master_total" "$events") "
            echo "$line"
        done
        echo "round $round $label single Redis: $(echo "${results[$label-single]}" | awk '{print $NF}') events/s, Redis $(echo "${results[$label-single-redis]}" | awk '{print $NF}') µs per event"
    done
done

for label in batch single; do
    s=$(echo "${results[$label-single]}" | tr ' ' '\n' | grep . | median)
    c=$(echo "${results[$label-cluster]}" | tr ' ' '\n' | grep . | median)
    w=$(echo "${results[$label-wait]}" | tr ' ' '\n' | grep . | median)
    sr=$(echo "${results[$label-single-redis]}" | tr ' ' '\n' | grep . | median)
    cm=$(echo "${results[$label-cluster-masters]}" | tr ' ' '\n' | grep . | median)
    echo "median $label: one Redis $s events/s (Redis $sr µs/event) | cluster $c events/s = $(awk -v a="$c" -v b="$s" 'BEGIN {printf "%.2f", a / b}') × (masters together $cm µs/event) | cluster with WAIT 1: $w events/s = $(awk -v a="$w" -v b="$c" 'BEGIN {printf "%.2f", a / b}') × without"
done
echo "busiest master's share of the masters' Redis CPU per round (1/3 is an even spread), batches: $(
    echo "${results[batch-cluster-share]}" | awk '{for (r = 0; r < NF / 3; r++) { m = 0; t = 0; for (i = 1; i <= 3; i++) { v = $(r * 3 + i); t += v; if (v > m) m = v }; printf "%.2f ", (t > 0 ? m / t : 0) } }'
)"
echo "socket errors or non-2xx answers: $errors"
