#!/usr/bin/env bash
# OTLP/HTTP logs against the JSON batch endpoint, in one run on one Redis, release build: wrk posts batches of 100 logs
# to POST /events/logs/batch (the JSON batch of scripts/lib.sh) and to POST /v1/logs (Benchmarks/otlp/bodies.py): the
# same records in protobuf and in OTLP/JSON, and in protobuf as an OpenTelemetry SDK sends them (its resource
# attributes, a scope, times, trace and span ids: more per record to decode, map and store), in alternating rounds.
# Prints events/s, p99 and the gateway's and Redis's CPU per event (from /proc) each round, then the medians and the
# ratios to the JSON batch. The goal: OTLP protobuf of the same records ≥ 1.0 × the JSON batch's events/s. Beside them,
# the Elasticsearch bulk API (POST /_bulk) with the same records as 100 ECS documents (@timestamp, message, log.level,
# service.name, labels.region), as shippers send them: goal ≥ 0.8 × the JSON batch. Redis is emptied before each run.
# BASELINE_GATEWAY=/path/to/an/older/operyn-gateway adds that build (same Redis, its own prefix) to every round for the
# JSON batch and OTLP, and prints this build's ratios to it: the way to show a change does not regress.
# Usage: scripts/bench-otlp.sh [ROUNDS] [SECONDS]   (defaults 3, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config wrk python3-venv

rounds=${1:-3}
seconds=${2:-10}
connections=64

build_release
python=$(ensure_otel_python "$PWD/.build/otel-venv")

with_scratch otlpbench

start_bench_redis 6420
start_bench_gateway 3601
this_port=$gateway_port
this_pid=$gateway_pid
baseline_port=
if [ -n "${BASELINE_GATEWAY:-}" ]; then
    baseline_port=$(spare_port 3651)
    OPERYN_REDIS_URL="redis://127.0.0.1:$redis_port" OPERYN_PORT=$baseline_port OPERYN_KEY_PREFIX=baseline OPERYN_LOG_LEVEL=warning \
        OPERYN_BACKLOG_HIGH_WATER=1000000000 "$BASELINE_GATEWAY" 2>"$work/baseline.log" &
    baseline_pid=$!
    pids+=($baseline_pid)
    wait_for_port "$baseline_port" 30
fi

bench_bodies "$work"
"$python" Benchmarks/otlp/bodies.py "$work"
for check in "/events/logs/batch application/json batch.json" "/v1/logs application/x-protobuf logs-100.pb" \
    "/v1/logs application/json logs-100.json" "/v1/logs application/x-protobuf logs-100-sdk.pb" "/_bulk application/x-ndjson bulk-100.ndjson"; do
    read -r path type file <<<"$check"
    code=$(curl -s -o "$work/answer" -w '%{http_code}' -X POST "http://127.0.0.1:$gateway_port$path" -H "content-type: $type" --data-binary "@$work/$file")
    case "$code" in 200 | 202) ;; *) echo "$path ($type) answered $code: $(head -c 300 "$work/answer")" >&2; exit 1 ;; esac
done

# measured PATH TYPE FILE → "events_per_sec p99_us errors gateway_us_per_event redis_us_per_event", of this build, or of
# the baseline with BASELINE=1.
measured() {
    local before redis_before result gateway_port=$this_port gateway_pid=$this_pid
    if [ "${BASELINE:-0}" = 1 ]; then gateway_port=$baseline_port gateway_pid=$baseline_pid; fi
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
sdk=(); sdk_cpu=(); sdk_redis=(); sdk_p99=(); bulk=(); bulk_cpu=(); bulk_redis=(); bulk_p99=()
base_json=(); base_json_cpu=(); base_pb=(); base_pb_cpu=(); base_sdk=(); base_sdk_cpu=(); base_oj=(); base_oj_cpu=()
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
    read -r b bp be bc br < <(measured /_bulk application/x-ndjson bulk-100.ndjson)
    bulk+=("$b"); bulk_p99+=("$bp"); bulk_cpu+=("$bc"); bulk_redis+=("$br")
    errors=$((errors + je + pe + oe + ke + be))
    if [ -n "$baseline_port" ]; then
        read -r x _ xe xc _ < <(BASELINE=1 measured /events/logs/batch application/json batch.json)
        read -r y _ ye yc _ < <(BASELINE=1 measured /v1/logs application/x-protobuf logs-100.pb)
        read -r z _ ze zc _ < <(BASELINE=1 measured /v1/logs application/x-protobuf logs-100-sdk.pb)
        read -r w _ we wc _ < <(BASELINE=1 measured /v1/logs application/json logs-100.json)
        base_json+=("$x"); base_json_cpu+=("$xc"); base_pb+=("$y"); base_pb_cpu+=("$yc"); base_sdk+=("$z"); base_sdk_cpu+=("$zc")
        base_oj+=("$w"); base_oj_cpu+=("$wc")
        errors=$((errors + xe + ye + ze + we))
        echo "round $round, the baseline: JSON batch $x events/s ($xc µs CPU/event) | OTLP protobuf $y ($yc) | SDK-shaped $z ($zc) | OTLP/JSON $w ($wc)"
    fi
    echo "round $round: JSON batch $j events/s (p99 $((jp / 1000)) ms, $jc µs CPU/event + $jr in Redis) | OTLP protobuf $p events/s (p99 $((pp / 1000)) ms, $pc + $pr) | OTLP/JSON $o events/s (p99 $((op / 1000)) ms, $oc + $or) | OTLP protobuf as an SDK sends it $k events/s (p99 $((kp / 1000)) ms, $kc + $kr) | bulk API $b events/s (p99 $((bp / 1000)) ms, $bc + $br)"
done

m() { printf '%s\n' "$@" | median; }
mj=$(m "${json[@]}"); mp=$(m "${pb[@]}"); mo=$(m "${oj[@]}"); mk=$(m "${sdk[@]}")
echo
echo "medians of $rounds rounds ($seconds s each, $connections connections, batches of 100 logs):"
echo "  JSON batch (/events/logs/batch):   $mj events/s, p99 $(m "${json_p99[@]}") µs, gateway $(m "${json_cpu[@]}") µs CPU/event, Redis $(m "${json_redis[@]}")"
echo "  OTLP protobuf (/v1/logs):          $mp events/s, p99 $(m "${pb_p99[@]}") µs, gateway $(m "${pb_cpu[@]}") µs CPU/event, Redis $(m "${pb_redis[@]}")"
echo "  OTLP/JSON (/v1/logs):              $mo events/s, p99 $(m "${oj_p99[@]}") µs, gateway $(m "${oj_cpu[@]}") µs CPU/event, Redis $(m "${oj_redis[@]}")"
echo "  OTLP protobuf, SDK-shaped records: $mk events/s, p99 $(m "${sdk_p99[@]}") µs, gateway $(m "${sdk_cpu[@]}") µs CPU/event, Redis $(m "${sdk_redis[@]}")"
mb=$(m "${bulk[@]}")
echo "  bulk API, 100 ECS documents:       $mb events/s, p99 $(m "${bulk_p99[@]}") µs, gateway $(m "${bulk_cpu[@]}") µs CPU/event, Redis $(m "${bulk_redis[@]}")"
# Judged on the exact ratio (0.997 is printed 0.997, and is not met).
ratio=$(awk -v a="$mp" -v b="$mj" 'BEGIN {printf "%.3f", a / b}')
echo "ratio OTLP protobuf / JSON batch: $ratio × events/s (goal ≥ 1: $(awk -v a="$mp" -v b="$mj" 'BEGIN {print (a >= b) ? "met" : "NOT met"}'))"
echo "ratio OTLP/JSON / JSON batch: $(awk -v a="$mo" -v b="$mj" 'BEGIN {printf "%.2f", a / b}') × events/s"
echo "ratio OTLP protobuf as an SDK sends it / JSON batch: $(awk -v a="$mk" -v b="$mj" 'BEGIN {printf "%.2f", a / b}') × events/s"
echo "ratio bulk API / JSON batch: $(awk -v a="$mb" -v b="$mj" 'BEGIN {printf "%.3f", a / b}') × events/s (goal ≥ 0.8: $(awk -v a="$mb" -v b="$mj" 'BEGIN {print (a >= 0.8 * b) ? "met" : "NOT met"}'))"
if [ -n "$baseline_port" ]; then
    bj=$(m "${base_json[@]}"); bp=$(m "${base_pb[@]}"); bs=$(m "${base_sdk[@]}")
    echo "the baseline ($BASELINE_GATEWAY): JSON batch $bj events/s ($(m "${base_json_cpu[@]}") µs CPU/event), OTLP protobuf $bp ($(m "${base_pb_cpu[@]}")), SDK-shaped $bs ($(m "${base_sdk_cpu[@]}"))"
    bo=$(m "${base_oj[@]}")
    echo "OTLP/JSON: this build $mo / the baseline $bo events/s = $(awk -v a="$mo" -v b="$bo" 'BEGIN {printf "%.3f", a / b}') × (CPU per event $(m "${oj_cpu[@]}") / $(m "${base_oj_cpu[@]}") µs); against each one's JSON batch $(awk -v a="$mo" -v b="$mj" 'BEGIN {printf "%.2f", a / b}') × and $(awk -v a="$bo" -v b="$bj" 'BEGIN {printf "%.2f", a / b}') ×"
    echo "this build / the baseline: JSON batch $(awk -v a="$mj" -v b="$bj" 'BEGIN {printf "%.3f", a / b}') ×, OTLP protobuf $(awk -v a="$mp" -v b="$bp" 'BEGIN {printf "%.3f", a / b}') ×, SDK-shaped $(awk -v a="$mk" -v b="$bs" 'BEGIN {printf "%.3f", a / b}') × events/s; CPU per event $(awk -v a="$(m "${json_cpu[@]}")" -v b="$(m "${base_json_cpu[@]}")" 'BEGIN {printf "%.3f", a / b}') ×, $(awk -v a="$(m "${pb_cpu[@]}")" -v b="$(m "${base_pb_cpu[@]}")" 'BEGIN {printf "%.3f", a / b}') ×, $(awk -v a="$(m "${sdk_cpu[@]}")" -v b="$(m "${base_sdk_cpu[@]}")" 'BEGIN {printf "%.3f", a / b}') ×"
fi
echo "errors (connect, read, write, timeout): $errors"
