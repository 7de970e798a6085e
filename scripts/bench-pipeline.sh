#!/usr/bin/env bash
# The whole pipeline as a user sees it: a release gateway, Redis, two release workers and PostgreSQL on this machine,
# batches of 100 of the spec's log event. First its capacity: batches offered as fast as wrk sends them for
# CAPACITY_SECONDS (the gateway outruns the workers, and a backlog forms), then the rate the workers store that backlog
# at once the gateway is idle (an upper bound of the pipeline's: with traffic the gateway takes its share of the
# machine). Then batches are offered at a fixed rate, 50 % and then 80 % of the capacity, for SECONDS each (wrk, each connection waiting
# between its requests), and each phase reports the accepted → stored latency, p50 and p99, from the workers'
# operyn_worker_event_age_seconds histograms (the phase's bucket counts, both workers summed, interpolated within a
# bucket), the rate actually offered, and the backlog left at its end.
# Usage: scripts/bench-pipeline.sh [SECONDS] [CAPACITY_SECONDS]   (defaults 60, 20). Goal: p99 <= 1 s at 50 %, <= 2 s
# at 80 %, the backlog bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config postgresql wrk curl

seconds=${1:-60}
capacity_seconds=${2:-20}
connections=32

build_release
with_scratch pipeline
start_bench_redis 6490
pg_port=$(spare_port 5490)
start_postgres "$work/pg" "$pg_port"
start_bench_gateway 3801
bench_bodies "$work"
worker_ports=()
for i in 1 2; do
    port=$(spare_port $((9480 + i)))
    OPERYN_REDIS_URL="redis://127.0.0.1:$redis_port" OPERYN_KEY_PREFIX=bench OPERYN_DATABASE_URL="postgres://operyn@127.0.0.1:$pg_port/postgres" \
        OPERYN_METRICS_PORT="$port" OPERYN_CONSUMER_NAME="pipeline-$i" OPERYN_LOG_LEVEL=warning "$bin/operyn-worker" 2>>"$work/worker.log" &
    pids+=($!)
    worker_ports+=("$port")
    wait_for_port "$port" 60
done

rows() { psql -h 127.0.0.1 -p "$pg_port" -U operyn -d postgres -Atc "SELECT COUNT(*) FROM logs"; }
# The group's undelivered and pending entries over every log stream.
backlog() {
    redis-cli -p "$redis_port" --scan --pattern 'bench:stream:*logs*' | while read -r stream; do printf 'XINFO GROUPS %s\n' "$stream"; done |
        redis-cli -p "$redis_port" 2>/dev/null | awk '/^pending$/ {getline; t += $1} /^lag$/ {getline; t += $1} END {print t + 0}'
}
# The workers' event-age buckets of logs, summed: "le count" lines, le in seconds (+Inf last).
buckets() {
    for port in "${worker_ports[@]}"; do curl -s "http://127.0.0.1:$port/metrics"; done |
        sed -nE 's/^operyn_worker_event_age_seconds_bucket\{kind="logs",le="([^"]+)"\} ([0-9.e+]+)$/\1 \2/p' |
        awk '{n[$1] += $2} END {for (le in n) print le, n[le]}' | sed 's/^+Inf/1e99/' | sort -g
}
# percentiles BEFORE AFTER → "p50_ms p99_ms events" of the events committed between the two readings.
percentiles() {
    paste -d' ' <(echo "$1") <(echo "$2") | awk '{ le[NR] = $1; n[NR] = $4 - $2 } END {
        total = n[NR]; out = ""
        for (q = 1; q <= 2; q++) {
            target = (q == 1 ? 0.5 : 0.99) * total; lower = 0; below = 0
            for (i = 1; i <= NR; i++) {
                if (n[i] >= target) { width = (le[i] > 1e90 ? 0 : le[i] - lower); share = (n[i] > below ? (target - below) / (n[i] - below) : 0)
                    out = out sprintf("%.0f ", (lower + share * width) * 1000); break }
                lower = le[i]; below = n[i]
            }
        }
        print out total }'
}
wait_drained() {
    local deadline=$((SECONDS + 300))
    until [ "$(backlog)" -eq 0 ]; do
        [ $SECONDS -ge $deadline ] && { echo "the backlog did not drain in 300 s" >&2; exit 1; }
        sleep 0.5
    done
}

echo "capacity: batches of 100 as fast as wrk sends them for $capacity_seconds s, then the drain of what they queued…"
wrk_post "$gateway_port" /events/logs/batch "$capacity_seconds" "$work/batch.json" 64 >"$work/capacity.txt"
# The workers alone, the gateway idle: the rate they store the queued backlog at is the pipeline's capacity (an
# upper bound: with traffic the gateway takes a share of the machine).
before=$(rows)
start=$(date +%s.%N)
wait_drained
after=$(rows)
end=$(date +%s.%N)
capacity=$(awk -v a="$before" -v b="$after" -v s="$start" -v e="$end" 'BEGIN {printf "%.0f", (b - a) / (e - s)}')
echo "capacity: $capacity events/s stored by the workers alone ($((after - before)) queued events drained; the gateway accepted $(awk '{printf "%.0f", $1 * 100}' "$work/capacity.txt") events/s)"

for share in 50 80; do
    rate=$((capacity * share / 100))
    # Each of the connections sends a batch of 100, then waits: connections × 100 events per (answer + delay). A 5 s
    # calibration measures the answer's share, and the delay is shortened by it.
    paced() {
        cat >"$work/paced.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = assert(io.open("$work/batch.json", "rb"))
wrk.body = file:read("*a")
file:close()
function delay() return $1 end
function done(summary, latency, requests)
    io.write(string.format("OFFERED %.0f\\n", summary.requests * 100 / (summary.duration / 1e6)))
end
LUA
        wrk -t1 -c"$connections" -d"$2s" -s "$work/paced.lua" "http://127.0.0.1:$gateway_port/events/logs/batch" | awk '/^OFFERED/ {print $2}'
    }
    delay=$(awk -v c="$connections" -v r="$rate" 'BEGIN {printf "%.0f", c * 100 * 1000 / r}')
    calibrated=$(paced "$delay" 5)
    delay=$(awk -v c="$connections" -v r="$rate" -v o="$calibrated" -v d="$delay" 'BEGIN {a = c * 100 * 1000 / o - d; x = c * 100 * 1000 / r - a; printf "%.0f", (x > 0 ? x : 0)}')
    wait_drained
    first=$(buckets)
    offered=$(paced "$delay" "$seconds")
    left=$(backlog)
    wait_drained
    sleep 1
    read -r p50 p99 events <<<"$(percentiles "$first" "$(buckets)")"
    echo "[$share %] offered $offered events/s for $seconds s (target $rate): accepted → stored p50 $p50 ms, p99 $p99 ms over $events events; backlog at the end $left entries"
done
