#!/usr/bin/env bash
# The packed queue (format version 3: chunk entries whose lines reach OPERYN_QUEUE_COMPRESS_BYTES compressed with zstd)
# against the plain one (OPERYN_QUEUE_COMPRESS_BYTES=0), in one run, release builds:
#   1. by events per chunk: bytes, Redis memory per event, packing and decoding time (operyn-redis-bench pack): where
#      the threshold pays;
#   2. the spec's log event in batches of 100 (and single events), one gateway of each kind, each on its own Redis
#      (AOF, appendfsync everysec): events/s, gateway and Redis CPU per event (/proc), Redis memory per queued event
#      (MEMORY USAGE of the streams ÷ events) and AOF bytes per event; rounds alternate the sides;
#   3. the same batches from 48 organizations on a Redis Cluster (3 masters, 3 replicas), a gateway of each kind: the
#      replicas' CPU per event.
# The worker's drain of a packed backlog: scripts/bench-worker.sh with PACK_B=1.
# Usage: scripts/bench-queue.sh [ROUNDS] [SECONDS]   (defaults 3, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config wrk

rounds=${1:-3}
seconds=${2:-10}

build_release
with_scratch queuebench
bench_bodies "$work"

# redis NAME FROM → a redis-server with AOF in $work/NAME; sets ${NAME}_redis_port and ${NAME}_redis_pid
redis() {
    local name=$1 port
    port=$(spare_port "$2")
    mkdir -p "$work/$name"
    redis-server --port "$port" --bind 127.0.0.1 --dir "$work/$name" --save "" --appendonly yes --appendfsync everysec \
        --auto-aof-rewrite-percentage 0 --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/$name/redis.log" 2>&1 &
    pids+=($!)
    printf -v "${name}_redis_pid" '%s' "$!"
    printf -v "${name}_redis_port" '%s' "$port"
    wait_for_port "$port" 10
}
# gateway NAME URL FROM [ENV…] → sets ${NAME}_port and ${NAME}_pid
gateway() {
    local name=$1 url=$2 port
    port=$(spare_port "$3")
    shift 3
    env "$@" OPERYN_REDIS_URL="$url" OPERYN_PORT="$port" OPERYN_KEY_PREFIX="bench-$name" OPERYN_LOG_LEVEL=warning \
        OPERYN_BACKLOG_HIGH_WATER=1000000000 "$bin/operyn-gateway" 2>"$work/gateway-$name.log" &
    pids+=($!)
    printf -v "${name}_pid" '%s' "$!"
    printf -v "${name}_port" '%s' "$port"
    wait_for_port "$port" 30
}

echo "== 1. by events per chunk (20 000 spec log events each way) =="
redis plain 6440
redis packed 6450
"$bin/operyn-redis-bench" pack "redis://127.0.0.1:$plain_redis_port"

echo "== 2. one gateway, one Redis each (wrk -t2 -c64, ${seconds} s a run) =="
gateway plain "redis://127.0.0.1:$plain_redis_port" 3701 OPERYN_QUEUE_COMPRESS_BYTES=0
gateway packed "redis://127.0.0.1:$packed_redis_port" 3711

ticks_to_us() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" -v n="$2" 'BEGIN {printf "%.3f", t / hz * 1e6 / n}'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
# stream_bytes PORT → MEMORY USAGE of every stream, summed
stream_bytes() {
    redis-cli -p "$1" --scan --pattern '*:stream:*' | while read -r stream; do redis-cli -p "$1" memory usage "$stream" samples 0; done |
        awk '{t += $1} END {print t + 0}'
}
aof_bytes() { redis-cli -p "$1" info persistence | awk -F: '/^aof_current_size:/ {printf "%.0f\n", $2 + 0}'; }

declare -A results
errors=0
for name in plain packed; do
    port_var="${name}_port"
    wrk_post "${!port_var}" /events/logs/batch 3 "$work/batch.json" >/dev/null
done
for round in $(seq "$rounds"); do
    order=(plain packed)
    [ $((round % 2)) -eq 0 ] && order=(packed plain)
    for kind in batch single; do
        body="$work/batch.json" path=/events/logs/batch per=100
        [ $kind = single ] && body="$work/log.json" path=/events/logs per=1
        for name in "${order[@]}"; do
            port_var="${name}_port" pid_var="${name}_pid" redis_port_var="${name}_redis_port" redis_pid_var="${name}_redis_pid"
            redis-cli -p "${!redis_port_var}" flushall sync >/dev/null
            aof_before=$(aof_bytes "${!redis_port_var}")
            before=$(cpu_ticks "${!pid_var}")
            redis_before=$(cpu_ticks "${!redis_pid_var}")
            read -r rps _ e < <(wrk_post "${!port_var}" "$path" "$seconds" "$body")
            after=$(cpu_ticks "${!pid_var}")
            redis_after=$(cpu_ticks "${!redis_pid_var}")
            sleep 1.2  # appendfsync everysec: the last second written
            events=$((rps * per * seconds))
            memory=$(stream_bytes "${!redis_port_var}")
            aof=$(($(aof_bytes "${!redis_port_var}") - aof_before))
            results[$kind.$name.rate]+="$((rps * per)) "
            results[$kind.$name.cpu]+="$(ticks_to_us $((after - before)) "$events") "
            results[$kind.$name.redis]+="$(ticks_to_us $((redis_after - redis_before)) "$events") "
            results[$kind.$name.memory]+="$(awk -v m="$memory" -v n="$events" 'BEGIN {printf "%.1f", m / n}') "
            results[$kind.$name.aof]+="$(awk -v m="$aof" -v n="$events" 'BEGIN {printf "%.1f", m / n}') "
            errors=$((errors + e))
            echo "round $round $kind $name: $((rps * per)) events/s, CPU per event gateway $(ticks_to_us $((after - before)) "$events") µs, Redis $(ticks_to_us $((redis_after - redis_before)) "$events") µs; Redis memory $(awk -v m="$memory" -v n="$events" 'BEGIN {printf "%.1f", m / n}') B/event, AOF $(awk -v m="$aof" -v n="$events" 'BEGIN {printf "%.1f", m / n}') B/event"
        done
    done
done
value() { printf '%s\n' ${results[$1]} | median; }
for kind in batch single; do
    echo "median $kind, packed / plain: events/s $(value $kind.packed.rate) / $(value $kind.plain.rate) = $(ratio "$(value $kind.packed.rate)" "$(value $kind.plain.rate)") × (goal >= 0.95)," \
        "gateway CPU/event $(value $kind.packed.cpu) / $(value $kind.plain.cpu) µs = $(ratio "$(value $kind.packed.cpu)" "$(value $kind.plain.cpu)") ×," \
        "Redis CPU/event $(value $kind.packed.redis) / $(value $kind.plain.redis) µs = $(ratio "$(value $kind.packed.redis)" "$(value $kind.plain.redis)") ×," \
        "Redis memory/event $(value $kind.packed.memory) / $(value $kind.plain.memory) B = $(ratio "$(value $kind.packed.memory)" "$(value $kind.plain.memory)") × (goal <= 0.3)," \
        "AOF/event $(value $kind.packed.aof) / $(value $kind.plain.aof) B = $(ratio "$(value $kind.packed.aof)" "$(value $kind.plain.aof)") × (goal <= 0.3)"
done
echo "one gigabyte of Redis memory holds about $(awk -v m="$(value batch.packed.memory)" 'BEGIN {printf "%.0f", 1073741824 / m / 1e6}') million queued events packed (batches of 100), $(awk -v m="$(value batch.plain.memory)" 'BEGIN {printf "%.1f", 1073741824 / m / 1e6}') million plain"

echo "== 3. a Redis Cluster (3 masters, 3 replicas), batches from 48 organizations =="
cluster_port=$(spare_cluster_ports 7400)
start_redis_cluster "$work/cluster" "$cluster_port"
mapfile -t node_pids <"$work/cluster/pids"
pids+=("${node_pids[@]}")
cluster_url="redis+cluster://127.0.0.1:$cluster_port,127.0.0.1:$((cluster_port + 1))"
gateway cplain "$cluster_url" 3721 OPERYN_QUEUE_COMPRESS_BYTES=0
gateway cpacked "$cluster_url" 3731
master_pids() {
    local index=0 port
    for port in $(seq "$cluster_port" $((cluster_port + 5))); do
        if redis-cli -p "$port" role | head -1 | grep -q master; then echo "${node_pids[$index]}"; fi
        index=$((index + 1))
    done
}
for name in cplain cpacked; do
    port_var="${name}_port"
    BODY_FILE="$work/batch.json" ORGS=48 wrk -t2 -c64 -d3s -s Benchmarks/wrk/post.lua "http://127.0.0.1:${!port_var}/events/logs/batch" >/dev/null
done
for round in $(seq "$rounds"); do
    order=(cplain cpacked)
    [ $((round % 2)) -eq 0 ] && order=(cpacked cplain)
    for name in "${order[@]}"; do
        port_var="${name}_port"
        mapfile -t masters < <(master_pids)
        declare -A node_before=()
        for pid in "${node_pids[@]}"; do node_before[$pid]=$(cpu_ticks "$pid"); done
        read -r rps _ e < <(BODY_FILE="$work/batch.json" ORGS=48 wrk -t2 -c64 -d"${seconds}s" --latency -s Benchmarks/wrk/post.lua \
            "http://127.0.0.1:${!port_var}/events/logs/batch" |
            awk '/^RESULT/ { split($2,a,"="); split($4,b,"="); split($5,c,"="); split($6,d,"="); print a[2], b[2], c[2] + d[2] }')
        events=$((rps * 100 * seconds))
        master_total=0 all_total=0
        for pid in "${node_pids[@]}"; do all_total=$((all_total + $(cpu_ticks "$pid") - node_before[$pid])); done
        for pid in "${masters[@]}"; do master_total=$((master_total + $(cpu_ticks "$pid") - node_before[$pid])); done
        replicas=$((all_total - master_total))
        results[cluster.$name.rate]+="$((rps * 100)) "
        results[cluster.$name.masters]+="$(ticks_to_us "$master_total" "$events") "
        results[cluster.$name.replicas]+="$(ticks_to_us "$replicas" "$events") "
        errors=$((errors + e))
        echo "round $round cluster $name: $((rps * 100)) events/s; Redis CPU per event: masters $(ticks_to_us "$master_total" "$events") µs, replicas $(ticks_to_us "$replicas" "$events") µs"
    done
done
echo "median cluster, packed / plain: events/s $(value cluster.cpacked.rate) / $(value cluster.cplain.rate) = $(ratio "$(value cluster.cpacked.rate)" "$(value cluster.cplain.rate)") ×," \
    "masters' CPU/event $(value cluster.cpacked.masters) / $(value cluster.cplain.masters) µs = $(ratio "$(value cluster.cpacked.masters)" "$(value cluster.cplain.masters)") ×," \
    "replicas' CPU/event $(value cluster.cpacked.replicas) / $(value cluster.cplain.replicas) µs = $(ratio "$(value cluster.cpacked.replicas)" "$(value cluster.cplain.replicas)") × (goal <= 0.5)"
stop_redis_cluster "$work/cluster"
echo "socket errors or non-2xx answers: $errors"
