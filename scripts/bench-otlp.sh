#!/usr/bin/env bash
# OTLP/HTTP logs against the JSON batch endpoint, in one run on one Redis, release build: wrk posts batches of 100 logs
# to POST /events/logs/batch (the JSON batch of scripts/lib.sh) and to POST /v1/logs (Benchmarks/otlp/bodies.py): the
# same records in protobuf and in OTLP/JSON, and in protobuf as an OpenTelemetry SDK sends them (its resource
# attributes, a scope, times, trace and span ids: more per record to decode, map and store), in alternating rounds.
# Prints events/s, p99 and the gateway's and Redis's CPU per event (from /proc) each round, then the medians and the
# ratios to the JSON batch. The goal: OTLP protobuf of the same records ≥ 1.0 × the JSON batch's events/s. Redis is
# emptied before each run.
# Usage: scripts/bench-otlp.sh [ROUNDS] [SECONDS]   (defaults 3, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config wrk python3-venv

rounds=${1:-3}
seconds=${2:-10}
connections=64

build_release
python=$(ensure_otel_python "$PWD/.build/otel-venv")

with_scratch otlpbench

start_bench_redis 6420
start_bench_gateway 3601

bench_bodies "$work"
"$python" Benchmarks/otlp/bodies.py "$work"
for check in "/events/logs/batch application/json batch.json" "/v1/logs application/x-protobuf logs-100.pb" \
    "/v1/logs application/json logs-100.json" "/v1/logs application/x-protobuf logs-100-sdk.pb"; do
    read -r path type file <<<"$check"
    code=$(curl -s -o "$work/answer" -w '%{http_code}' -X POST "http://127.0.0.1:$gateway_port$path" -H "content-type: $type" --data-binary "@$work/$file")
    case "$code" in 200 | 202) ;; *) echo "$path ($type) answered $code: $(head -c 300 "$work/answer")" >&2; exit 1 ;; esac
done

# measured PATH TYPE FILE → "events_per_sec p99_us errors gateway_us_per_event redis_us_per_event"
measured() {
    local before redis_before result
    # Each run starts from an empty Redis: a stream grown by earlier runs (gigabytes here) would charge the later
    # runs for its memory.
    redis-cli -p "$redis_port" flushall sync >/dev/null
    before=$(cpu_ticks "$gateway_pid")
    redis_before=$(cpu_ticks "$redis_pid")
    result=$(BODY_FILE="$work/$3" CONTENT_TYPE="$2" wrk -t2 -c"$connections" -d"${seconds}s" --latency -s Benchmarks/wrk/post.lua \
        "http://127.0.0.1:$gateway_port$1" | awk '/^RESULT/ { split($2,a,"="); split($4,b,"="); split($5,c,"="); split($6,d,"="); print a[2] * 100, b[2], c[2] + d[2] }')
    local gateway=$(($(cpu_ticks "$gateway_pid") - before)) redis=$(($(cpu_ticks "$redis_pid") - redis_before))
    awk -v r="$result" -v g="$gateway" -v k="$redis" -v hz="$(getconf CLK_TCK)" -v s="$seconds" \
        'BEGIN { split(r, f, " "); n = f[1] * s; printf "%d %d %d %.2f %.2f\n", f[1], f[2], f[3], g / hz * 1e6 / n, k / hz * 1e6 / n }'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "warm-up…"
seconds=3 measured /events/logs/batch application/json batch.json >/dev/null
seconds=3 measured /v1/logs application/x-protobuf logs-100.pb >/dev/null

json=(); json_cpu=(); json_redis=(); json_p99=(); pb=(); pb_cpu=(); pb_redis=(); pb_p99=(); oj=(); oj_cpu=(); oj_redis=(); oj_p99=()
sdk=(); sdk_cpu=(); sdk_redis=(); sdk_p99=()
errors=0
for round in $(seq "$rounds"); do
    read -r j jp je jc jr < <(measured /events/logs/batch application/json batch.json)
    read -r p pp pe pc pr < <(measured /v1/logs application/x-protobuf logs-100.pb)
    read -r o op oe oc or < <(measured /v1/logs application/json logs-100.json)
    read -r k kp ke kc kr < <(measured /v1/logs application/x-protobuf logs-100-sdk.pb)
    sdk+=("$k"); sdk_p99+=("$kp"); sdk_cpu+=("$kc"); sdk_redis+=("$kr")
    json+=("$j"); json_p99+=("$jp"); json_cpu+=("$jc"); json_redis+=("$jr")
    pb+=("$p"); pb_p99+=("$pp"); pb_cpu+=("$pc"); pb_redis+=("$pr")
    oj+=("$o"); oj_p99+=("$op"); oj_cpu+=("$oc"); oj_redis+=("$or")
    errors=$((errors + je + pe + oe + ke))
    echo "round $round: JSON batch $j events/s (p99 $((jp / 1000)) ms, $jc µs CPU/event + $jr in Redis) | OTLP protobuf $p events/s (p99 $((pp / 1000)) ms, $pc + $pr) | OTLP/JSON $o events/s (p99 $((op / 1000)) ms, $oc + $or) | OTLP protobuf as an SDK sends it $k events/s (p99 $((kp / 1000)) ms, $kc + $kr)"
done

m() { printf '%s\n' "$@" | median; }
mj=$(m "${json[@]}"); mp=$(m "${pb[@]}"); mo=$(m "${oj[@]}"); mk=$(m "${sdk[@]}")
echo
echo "medians of $rounds rounds ($seconds s each, $connections connections, batches of 100 logs):"
echo "  JSON batch (/events/logs/batch):   $mj events/s, p99 $(m "${json_p99[@]}") µs, gateway $(m "${json_cpu[@]}") µs CPU/event, Redis $(m "${json_redis[@]}")"
echo "  OTLP protobuf (/v1/logs):          $mp events/s, p99 $(m "${pb_p99[@]}") µs, gateway $(m "${pb_cpu[@]}") µs CPU/event, Redis $(m "${pb_redis[@]}")"
echo "  OTLP/JSON (/v1/logs):              $mo events/s, p99 $(m "${oj_p99[@]}") µs, gateway $(m "${oj_cpu[@]}") µs CPU/event, Redis $(m "${oj_redis[@]}")"
echo "  OTLP protobuf, SDK-shaped records: $mk events/s, p99 $(m "${sdk_p99[@]}") µs, gateway $(m "${sdk_cpu[@]}") µs CPU/event, Redis $(m "${sdk_redis[@]}")"
# Judged on the exact ratio (0.997 is printed 0.997, and is not met).
ratio=$(awk -v a="$mp" -v b="$mj" 'BEGIN {printf "%.3f", a / b}')
echo "ratio OTLP protobuf / JSON batch: $ratio × events/s (goal ≥ 1: $(awk -v a="$mp" -v b="$mj" 'BEGIN {print (a >= b) ? "met" : "NOT met"}'))"
echo "ratio OTLP/JSON / JSON batch: $(awk -v a="$mo" -v b="$mj" 'BEGIN {printf "%.2f", a / b}') × events/s"
echo "ratio OTLP protobuf as an SDK sends it / JSON batch: $(awk -v a="$mk" -v b="$mj" 'BEGIN {printf "%.2f", a / b}') × events/s"
echo "errors (connect, read, write, timeout): $errors"
