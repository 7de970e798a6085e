#!/usr/bin/env bash
# Compressed batches: wrk posts the same batch of 100 logs (scripts/lib.sh's batch.json) to POST /events/logs/batch
# gzip-compressed (gzip -6, as curl and most shippers send it) and zstd-compressed (zstd -3, the library's default
# level, as the OpenTelemetry Collector and Fluent Bit send it), and uncompressed for reference, in alternating rounds
# on one Redis and one release gateway. Prints events/s, p99 and the gateway's CPU per event (from /proc) each round,
# then the medians and zstd / gzip. The goal: zstd batches ≥ 0.9 × gzip batches' events/s. Redis is emptied before
# each run.
# Usage: scripts/bench-compression.sh [ROUNDS] [SECONDS]   (defaults 3, 10)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config wrk zstd gzip

rounds=${1:-3}
seconds=${2:-10}
connections=64

build_release
with_scratch compressbench
start_bench_redis 6430
start_bench_gateway 3611

bench_bodies "$work"
gzip -6 -c "$work/batch.json" >"$work/batch.json.gz"
zstd -3 -q -c "$work/batch.json" >"$work/batch.json.zst"
echo "batch of 100: $(wc -c <"$work/batch.json") bytes; gzip $(wc -c <"$work/batch.json.gz"); zstd $(wc -c <"$work/batch.json.zst")"
for check in "identity batch.json" "gzip batch.json.gz" "zstd batch.json.zst"; do
    read -r encoding file <<<"$check"
    code=$(curl -s -o "$work/answer" -w '%{http_code}' -X POST "http://127.0.0.1:$gateway_port/events/logs/batch" \
        -H 'content-type: application/json' -H "content-encoding: $encoding" --data-binary "@$work/$file")
    [ "$code" = 202 ] || { echo "$encoding answered $code: $(head -c 300 "$work/answer")" >&2; exit 1; }
done

# measured ENCODING FILE → "events_per_sec p99_us errors gateway_us_per_event"
measured() {
    redis-cli -p "$redis_port" flushall sync >/dev/null
    local before result
    before=$(cpu_ticks "$gateway_pid")
    result=$(CONTENT_ENCODING="$1" wrk_post "$gateway_port" /events/logs/batch "$seconds" "$work/$2" "$connections")
    local gateway=$(($(cpu_ticks "$gateway_pid") - before))
    awk -v r="$result" -v g="$gateway" -v hz="$(getconf CLK_TCK)" -v s="$seconds" \
        'BEGIN { split(r, f, " "); n = f[1] * 100 * s; printf "%d %d %d %.2f\n", f[1] * 100, f[2], f[3], g / hz * 1e6 / n }'
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

echo "warm-up…"
seconds=3 measured gzip batch.json.gz >/dev/null
declare -A rates=() cpus=()
errors=0
for round in $(seq "$rounds"); do
    for check in "identity batch.json" "gzip batch.json.gz" "zstd batch.json.zst"; do
        read -r encoding file <<<"$check"
        read -r rate p99 failed cpu < <(measured "$encoding" "$file")
        echo "round $round $encoding: $rate events/s, p99 $((p99 / 1000)) ms, $cpu µs gateway CPU per event, errors $failed"
        rates[$encoding]="${rates[$encoding]:-} $rate"
        cpus[$encoding]="${cpus[$encoding]:-} $cpu"
        errors=$((errors + failed))
    done
done
for encoding in identity gzip zstd; do
    echo "median $encoding: $(printf '%s\n' ${rates[$encoding]} | median) events/s, $(printf '%s\n' ${cpus[$encoding]} | median) µs CPU per event"
done
gzip_rate=$(printf '%s\n' ${rates[gzip]} | median)
zstd_rate=$(printf '%s\n' ${rates[zstd]} | median)
echo "zstd / gzip: $(awk -v z="$zstd_rate" -v g="$gzip_rate" 'BEGIN {printf "%.2f", z / g}') (goal >= 0.9); socket errors: $errors"
