#!/usr/bin/env bash
# What rate limits and Idempotency-Keys cost, in one run on one Redis (release builds, wrk, 64 connections): the same
# gateway build unlimited and with a default rate limit on every organization that no request reaches (single
# events and batches of 100), and requests carrying an Idempotency-Key each against the same requests without one
# (both through wrk's Lua per request). Rounds alternate the sides; medians, ratios and CPU per request (/proc) of
# the gateway and of Redis.
# Usage: scripts/bench-limits.sh [ROUNDS] [SECONDS]   (defaults 3, 10)
# BASELINE_GATEWAY=/path/to/an/older/operyn-gateway measures that build's limited gateway beside this one's.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config wrk

rounds=${1:-3}
seconds=${2:-10}

build_release
with_scratch limitsbench
start_bench_redis 6430
bench_bodies "$work"

# gateway NAME PORT BINARY [ENV…] → starts it; sets ${NAME}_port and ${NAME}_pid
gateway() {
    local name=$1 from=$2 binary=$3 port
    shift 3
    port=$(spare_port "$from")
    env "$@" OPERYN_REDIS_URL="redis://127.0.0.1:$redis_port" OPERYN_PORT=$port OPERYN_KEY_PREFIX=$name OPERYN_LOG_LEVEL=warning \
        OPERYN_BACKLOG_HIGH_WATER=1000000000 "$binary" 2>"$work/$name.log" &
    pids+=($!)
    printf -v "${name}_pid" '%s' "$!"
    printf -v "${name}_port" '%s' "$port"
    wait_for_port "$port" 30
}
unreached=(OPERYN_RATE_EVENTS_PER_SECOND=100000000 OPERYN_RATE_EVENTS_BURST=100000000)
gateway open 3601 "$bin/operyn-gateway"
gateway limited 3611 "$bin/operyn-gateway" "${unreached[@]}"
[ -n "${BASELINE_GATEWAY:-}" ] && gateway baseline 3621 "$BASELINE_GATEWAY" "${unreached[@]}"

# measured PID PORT PATH BODY [KEYED] → "requests_per_sec p99_us errors gateway_cpu_us_per_request redis_cpu_us_per_request"
measured() {
    local before after redis_before redis_after result rps
    redis-cli -p "$redis_port" flushall sync >/dev/null
    before=$(cpu_ticks "$1")
    redis_before=$(cpu_ticks "$redis_pid")
    result=$(KEYED=${5:-} wrk_post "$2" "$3" "$seconds" "$4")
    after=$(cpu_ticks "$1")
    redis_after=$(cpu_ticks "$redis_pid")
    rps=${result%% *}
    echo "$result" "$(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="$rps" -v s="$seconds" 'BEGIN {printf "%.1f", t / hz * 1e6 / (r * s)}')" \
        "$(awk -v t=$((redis_after - redis_before)) -v hz="$(getconf CLK_TCK)" -v r="$rps" -v s="$seconds" 'BEGIN {printf "%.1f", t / hz * 1e6 / (r * s)}')"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo "warm-up…"
for name in open limited; do
    port_var="${name}_port"
    wrk_post "${!port_var}" /events/logs 3 "$work/log.json" >/dev/null
    wrk_post "${!port_var}" /events/logs/batch 3 "$work/batch.json" >/dev/null
done

declare -A results
errors=0
# record SIDE RESULT… → keeps requests/s, gateway CPU and Redis CPU of SIDE
record() {
    local side=$1 rps=$2 errs=$4 cpu=$5 redis=$6
    results[$side.rps]+="$rps "
    results[$side.cpu]+="$cpu "
    results[$side.redis]+="$redis "
    errors=$((errors + errs))
}
sides=(open.single limited.single open.batch limited.batch unkeyed.single keyed.single unkeyed.batch keyed.batch)
[ -n "${BASELINE_GATEWAY:-}" ] && sides+=(baseline.single baseline.batch)
for round in $(seq "$rounds"); do
    order=("${sides[@]}")
    # Alternate which side of each pair goes first.
    if [ $((round % 2)) -eq 0 ]; then order=(limited.single open.single limited.batch open.batch keyed.single unkeyed.single keyed.batch unkeyed.batch "${sides[@]:8}"); fi
    line="round $round:"
    for side in "${order[@]}"; do
        case $side in
            open.*) pid=$open_pid port=$open_port keyed="" ;;
            limited.*) pid=$limited_pid port=$limited_port keyed="" ;;
            baseline.*) pid=$baseline_pid port=$baseline_port keyed="" ;;
            unkeyed.*) pid=$open_pid port=$open_port keyed=no ;;
            keyed.*) pid=$open_pid port=$open_port keyed=yes ;;
        esac
        if [ "${side#*.}" = single ]; then path=/events/logs body=$work/log.json; else path=/events/logs/batch body=$work/batch.json; fi
        read -r -a result < <(measured "$pid" "$port" "$path" "$body" "$keyed")
        record "$side" "${result[@]}"
        line="$line $side ${result[0]} req/s (${result[3]}+${result[4]} µs CPU)"
    done
    echo "$line"
done
value() { printf '%s\n' ${results[$1.$2]} | median; }
echo "medians (requests/s; gateway + Redis CPU µs per request):"
for side in "${sides[@]}"; do echo "  $side: $(value "$side" rps) req/s, $(value "$side" cpu) + $(value "$side" redis) µs"; done
for kind in single batch; do
    echo "limited / unlimited, $kind: $(ratio "$(value limited.$kind rps)" "$(value open.$kind rps)") × requests/s (goal >= $([ $kind = single ] && echo 0.9 || echo 0.97)), CPU $(ratio "$(value limited.$kind cpu)" "$(value open.$kind cpu)") × gateway, $(ratio "$(value limited.$kind redis)" "$(value open.$kind redis)") × Redis"
done
for kind in single batch; do
    echo "with an Idempotency-Key / without, $kind: $(ratio "$(value keyed.$kind rps)" "$(value unkeyed.$kind rps)") × requests/s (goal >= 0.8), CPU $(ratio "$(value keyed.$kind cpu)" "$(value unkeyed.$kind cpu)") × gateway, $(ratio "$(value keyed.$kind redis)" "$(value unkeyed.$kind redis)") × Redis"
done
if [ -n "${BASELINE_GATEWAY:-}" ]; then
    for kind in single batch; do
        echo "limited, this build / $BASELINE_GATEWAY, $kind: $(ratio "$(value limited.$kind rps)" "$(value baseline.$kind rps)") × requests/s"
    done
fi
echo "socket errors or non-2xx answers: $errors"
