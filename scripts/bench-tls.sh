#!/usr/bin/env bash
# What TLS to Redis costs the gateway: one redis-server listening on a plain port and a TLS port (a throwaway CA from
# scripts/make-test-certs.sh), two release gateways of this build, one on redis:// and one on rediss://, measured in
# turn with wrk (the spec's log event over 64 connections, and batches of 100) for ROUNDS rounds; prints each round,
# the medians, the TLS / plain ratios of requests or events per second, and CPU per request or event of the gateway
# and of Redis read from /proc. Redis is emptied before each measured run.
# Usage: scripts/bench-tls.sh [ROUNDS] [SECONDS]   (defaults 5, 10)
# Goals: batches >= 0.9 x plain, single events >= 0.85 x plain.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config wrk openssl

rounds=${1:-5}
seconds=${2:-10}
connections=64

build_release
with_scratch tlsbench
bash scripts/make-test-certs.sh "$work/tls"

redis_port=$(spare_port 6470)
tls_port=$(spare_port $((redis_port + 1)))
redis-server --port "$redis_port" --tls-port "$tls_port" --tls-cert-file "$work/tls/server.pem" --tls-key-file "$work/tls/server.key" \
    --tls-ca-cert-file "$work/tls/ca.pem" --tls-auth-clients no --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes \
    --appendfsync everysec --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=($redis_pid)
wait_for_port "$redis_port" 10
wait_for_port "$tls_port" 10

# gateway NAME URL [NAME=value…] → starts a gateway on a spare port; sets ${NAME}_port and ${NAME}_pid.
gateway() {
    local name=$1 url=$2 port
    shift 2
    port=$(spare_port 3601)
    env "$@" OPERYN_REDIS_URL="$url" OPERYN_PORT="$port" OPERYN_KEY_PREFIX="bench-$name" OPERYN_LOG_LEVEL=warning \
        OPERYN_BACKLOG_HIGH_WATER=1000000000 "$bin/operyn-gateway" 2>"$work/gateway-$name.log" &
    pids+=($!)
    printf -v "${name}_pid" '%s' $!
    printf -v "${name}_port" '%s' "$port"
    wait_for_port "$port" 30
}
gateway plain "redis://127.0.0.1:$redis_port"
gateway tls "rediss://localhost:$tls_port" OPERYN_REDIS_TLS_CA_FILE="$work/tls/ca.pem"

bench_bodies "$work"
run() { wrk_post "$1" "$2" "$3" "$4" "$connections"; }
# measured PID PORT PATH BODY PER_REQUEST → "per_second errors gateway_us redis_us" (per request, or per event of a batch)
measured() {
    local before after redis_before redis_after rate errors
    redis-cli -p "$redis_port" flushall sync >/dev/null
    before=$(cpu_ticks "$1")
    redis_before=$(cpu_ticks "$redis_pid")
    read -r rate _ errors < <(run "$2" "$3" "$seconds" "$4")
    after=$(cpu_ticks "$1")
    redis_after=$(cpu_ticks "$redis_pid")
    awk -v r="$rate" -v e="$errors" -v n="$5" -v s="$seconds" -v g=$((after - before)) -v x=$((redis_after - redis_before)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.0f %d %.2f %.2f\n", r * n, e, g / hz * 1e6 / (r * n * s), x / hz * 1e6 / (r * n * s)}'
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "warm-up…"
for name in plain tls; do
    port_var="${name}_port"
    run "${!port_var}" /events/logs 3 "$work/log.json" >/dev/null
    run "${!port_var}" /events/logs/batch 3 "$work/batch.json" >/dev/null
done

declare -A results=()
errors=0
for round in $(seq "$rounds"); do
    line="round $round:"
    # Alternate which goes first, so neither always meets the machine fresher.
    order=(plain tls)
    [ $((round % 2)) -eq 0 ] && order=(tls plain)
    for name in "${order[@]}"; do
        port_var="${name}_port" pid_var="${name}_pid"
        read -r s e1 su sr < <(measured "${!pid_var}" "${!port_var}" /events/logs "$work/log.json" 1)
        read -r b e2 bu br < <(measured "${!pid_var}" "${!port_var}" /events/logs/batch "$work/batch.json" 100)
        errors=$((errors + e1 + e2))
        results[$name-single]+=" $s"; results[$name-single-cpu]+=" $su"; results[$name-single-redis]+=" $sr"
        results[$name-batch]+=" $b"; results[$name-batch-cpu]+=" $bu"; results[$name-batch-redis]+=" $br"
        line="$line $name: single $s req/s ($su µs CPU/request + $sr in Redis), batch $b events/s ($bu µs CPU/event + $br in Redis) |"
    done
    echo "$line"
done
m() { printf '%s\n' ${results[$1]} | median; }
echo
echo "medians of $rounds rounds of $seconds s ($connections connections):"
for name in plain tls; do
    echo "  $name: single $(m "$name-single") req/s, $(m "$name-single-cpu") µs CPU/request (+$(m "$name-single-redis") in Redis); batch $(m "$name-batch") events/s, $(m "$name-batch-cpu") µs CPU/event (+$(m "$name-batch-redis") in Redis)"
done
ratio() { awk -v a="$(m "tls-$1")" -v b="$(m "plain-$1")" 'BEGIN {printf "%.3f", a / b}'; }
echo "TLS / plain: single events $(ratio single) (goal >= 0.85), batches $(ratio batch) (goal >= 0.9); gateway CPU per request $(ratio single-cpu), per batched event $(ratio batch-cpu)"
echo "errors: $errors"
