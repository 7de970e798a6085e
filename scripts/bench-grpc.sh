#!/usr/bin/env bash
# OTLP over gRPC against OTLP/HTTP protobuf, in one run on one Redis, release build: h2load (nghttp2) posts the same
# export of 100 log records (Benchmarks/otlp/bodies.py) to LogsService/Export over HTTP/2 (8 connections × 8 streams)
# and to POST /v1/logs over HTTP/1.1 (64 connections), in alternating rounds, the same load generator for both.
# Prints events/s and the gateway's CPU per event (from /proc) each round, then the medians and the ratio; the goal:
# gRPC ≥ 0.9 × OTLP/HTTP protobuf. Every gRPC call is checked answered OK (the gateway's operyn_grpc_requests_total: no other code),
# since h2load sees HTTP status 200 on a gRPC error too. Beside them, OTLP/HTTP protobuf to a second gateway of the same
# build with the retry window off (OPERYN_OTLP_RETRY_WINDOW_SECONDS=0): what recording each export's digest costs.
# Then the gateway's resident memory over a gRPC soak.
# Usage: scripts/bench-grpc.sh [ROUNDS] [SECONDS] [SOAK_SECONDS]   (defaults 3, 10, 30)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config nghttp2-client python3-venv

rounds=${1:-3}
seconds=${2:-10}
soak=${3:-30}

build_release
python=$(ensure_otel_python "$PWD/.build/otel-venv")
with_scratch grpcbench
start_bench_redis 6430
grpc_port=$(spare_port 4417)
OPERYN_GRPC_PORT=$grpc_port start_bench_gateway 3621
wait_for_port "$grpc_port" 30
main_port=$gateway_port
main_pid=$gateway_pid
OPERYN_OTLP_RETRY_WINDOW_SECONDS=0 start_bench_gateway 3631
off_port=$gateway_port
off_pid=$gateway_pid
gateway_port=$main_port
gateway_pid=$main_pid

"$python" Benchmarks/otlp/bodies.py "$work"
# A gRPC message: the compressed flag (0), the length (4 bytes, big-endian), the message.
python3 -c 'import struct, sys; body = open(sys.argv[1], "rb").read(); open(sys.argv[2], "wb").write(b"\0" + struct.pack(">I", len(body)) + body)' \
    "$work/logs-100.pb" "$work/logs-100.grpc"
method=/opentelemetry.proto.collector.logs.v1.LogsService/Export
# failed_calls → the gRPC calls of the method the gateway answered with another status than OK, by code ("CODE=N ...";
# every code's counter exists from the start, so those at 0 are left out)
failed_calls() {
    curl -s "http://127.0.0.1:$gateway_port/metrics" |
        awk -v m="${method#/}" 'index($0, "operyn_grpc_requests_total{") == 1 && index($0, m) && !index($0, "code=\"OK\"") && $NF > 0 {
            match($0, /code="[A-Z_]+"/); printf "%s=%s ", substr($0, RSTART + 6, RLENGTH - 7), $NF }'
}
# total CODES → the sum of "CODE=N" counts
total() { tr ' ' '\n' | awk -F= 'NF == 2 {s += $2} END {print s + 0}'; }

# measured grpc|http|off → "events_per_sec gateway_us_per_event succeeded" (off: OTLP/HTTP to the gateway without the
# retry window)
measured() {
    local before after output succeeded pid=$gateway_pid port=$gateway_port
    if [ "$1" = off ]; then pid=$off_pid port=$off_port; fi
    redis-cli -p "$redis_port" flushall sync >/dev/null
    before=$(cpu_ticks "$pid")
    if [ "$1" = grpc ]; then
        output=$(h2load -c8 -m8 -D "$seconds" -d "$work/logs-100.grpc" -H 'content-type: application/grpc' -H 'te: trailers' \
            -H 'x-organization-id: bench' "http://127.0.0.1:$grpc_port$method")
    else
        output=$(h2load --h1 -c64 -m1 -D "$seconds" -d "$work/logs-100.pb" -H 'content-type: application/x-protobuf' \
            -H 'x-organization-id: bench' "http://127.0.0.1:$port/v1/logs")
    fi
    after=$(cpu_ticks "$pid")
    succeeded=$(echo "$output" | awk '/^requests:/ {print $8}')
    awk -v n="$succeeded" -v s="$seconds" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN {printf "%.0f %.2f %d\n", n * 100 / s, t / hz * 1e6 / (n * 100), n}'
}
middle() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "warm-up…"
measured http >/dev/null
measured grpc >/dev/null
measured off >/dev/null
grpc_rate=(); http_rate=(); grpc_cpu=(); http_cpu=(); off_rate=(); off_cpu=()
for round in $(seq "$rounds"); do
    failed_before=$(failed_calls | total)
    read -r g gc _ < <(measured grpc)
    failed=$(($(failed_calls | total) - failed_before))
    # h2load abandons the streams in flight when its time is up (64 at most): those calls end without their message
    # (UNAVAILABLE or CANCELLED). Any other code, or more of them, fails the run.
    if [ "$failed" -gt 64 ] || failed_calls | tr ' ' '\n' | grep -v '^$' | grep -qvE '^(CANCELLED|UNAVAILABLE)='; then
        echo "round $round: the gateway answered $failed gRPC calls with an error: $(failed_calls)" >&2
        exit 1
    fi
    read -r h hc _ < <(measured http)
    read -r o oc _ < <(measured off)
    grpc_rate+=("$g"); grpc_cpu+=("$gc"); http_rate+=("$h"); http_cpu+=("$hc"); off_rate+=("$o"); off_cpu+=("$oc")
    [ "$failed" -eq 0 ] || echo "round $round: $failed calls abandoned by h2load at its end ($(failed_calls)in all)"
    echo "round $round: gRPC $g events/s ($gc µs gateway CPU per event) | OTLP/HTTP protobuf $h events/s ($hc µs) | without the retry window $o events/s ($oc µs)"
done
g=$(printf '%s\n' "${grpc_rate[@]}" | middle); h=$(printf '%s\n' "${http_rate[@]}" | middle)
gc=$(printf '%s\n' "${grpc_cpu[@]}" | middle); hc=$(printf '%s\n' "${http_cpu[@]}" | middle)
o=$(printf '%s\n' "${off_rate[@]}" | middle); oc=$(printf '%s\n' "${off_cpu[@]}" | middle)
echo "the retry window: OTLP/HTTP protobuf $h / $o events/s without it = $(awk -v a="$h" -v b="$o" 'BEGIN {printf "%.2f", a / b}') ×; CPU per event $hc / $oc µs = $(awk -v a="$hc" -v b="$oc" 'BEGIN {printf "%.2f", a / b}') ×"
echo "medians: gRPC $g / OTLP/HTTP protobuf $h events/s = $(awk -v a="$g" -v b="$h" 'BEGIN {printf "%.2f", a / b}') × (goal >= 0.9); CPU per event $gc / $hc µs = $(awk -v a="$gc" -v b="$hc" 'BEGIN {printf "%.2f", a / b}') ×"

# What a gRPC call costs the gateway by itself: grpc.health.v1.Health/Check (an empty request, one Redis PING) at the same
# concurrency; with an export's CPU over HTTP it bounds the ratio any export handler could reach behind this transport.
printf '\0\0\0\0\0' >"$work/empty.grpc"
before=$(cpu_ticks "$gateway_pid")
checks=$(h2load -c8 -m8 -D "$seconds" -d "$work/empty.grpc" -H 'content-type: application/grpc' -H 'te: trailers' \
    "http://127.0.0.1:$grpc_port/grpc.health.v1.Health/Check" | awk '/^requests:/ {print $8}')
after=$(cpu_ticks "$gateway_pid")
call_us=$(awk -v n="$checks" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.1f", t / hz * 1e6 / n}')
echo "a bare gRPC call (health check): $((checks / seconds)) calls/s, $call_us µs gateway CPU per call; an export of 100 over HTTP: $(awk -v c="$hc" 'BEGIN {printf "%.0f", c * 100}') µs, so at best $(awk -v c="$hc" -v g="$call_us" 'BEGIN {printf "%.2f", c * 100 / (c * 100 + g)}') × over gRPC"

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
echo "memory: ${soak}s of gRPC exports…"
start_rss=$(rss_mb "$gateway_pid")
h2load -c8 -m8 -D "$soak" -d "$work/logs-100.grpc" -H 'content-type: application/grpc' -H 'te: trailers' -H 'x-organization-id: bench' \
    "http://127.0.0.1:$grpc_port$method" >/dev/null &
load=$!
sleep $((soak / 2))
half_rss=$(rss_mb "$gateway_pid")
wait "$load"
echo "gateway RSS: $start_rss MB before, $half_rss MB at $((soak / 2)) s, $(rss_mb "$gateway_pid") MB at $soak s"
