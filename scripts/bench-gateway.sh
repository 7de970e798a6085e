#!/usr/bin/env bash
# Gateway throughput, latency, CPU per request and memory with wrk against release builds, beside two ceiling
# servers answering 202 with no work (Hummingbird: Benchmarks/Ceiling; bare SwiftNIO: Benchmarks/RawCeiling) and a
# plain Go peer (Benchmarks/peers/go: net/http, a redigo pool, encoding/json validation, XADD per event, MULTI/EXEC
# per batch), in one run on one Redis; then system calls per request (strace -c -f) and fairness at 2 000
# connections. Redis is emptied before each measured run. Then CPU per single-event request as the event-loop goal
# reads it, with wrk on one thread (-t1 -c64): the raw NIO server, the gateway, the Go peer (and the baseline).
# Usage: scripts/bench-gateway.sh [ROUNDS] [SECONDS] [SOAK_SECONDS]   (defaults 3, 10, 60)
# BASELINE_GATEWAY=/path/to/an/older/operyn-gateway adds that build to every round (same Redis, its own key
# prefix) and prints this build's ratios against it: the way to show a change does not regress. BASELINE_ENV adds
# environment to it: BASELINE_GATEWAY=.build/release/operyn-gateway BASELINE_ENV=OPERYN_COALESCE=false measures
# what coalescing the requests of one event-loop tick brings.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config wrk strace golang-go golang-github-gomodule-redigo-dev

rounds=${1:-3}
seconds=${2:-10}
soak=${3:-60}
connections=64

build_release

with_scratch gwbench

start_bench_redis 6410

start_bench_gateway 3101
ceiling_port=$(spare_port 3201)
"$bin/operyn-ceiling" "$ceiling_port" 2>/dev/null &
pids+=($!)
raw_port=$(spare_port 3251)
"$bin/operyn-raw-ceiling" "$raw_port" 2>/dev/null &
raw_pid=$!
pids+=($!)
wait_for_port "$ceiling_port" 30
wait_for_port "$raw_port" 30
# The Go peer, built in GOPATH mode against Debian's redigo (no module download).
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" go build -o "$work/go-peer" Benchmarks/peers/go/main.go
go_port=$(spare_port 3501)
"$work/go-peer" "$go_port" "127.0.0.1:$redis_port" gopeer 2>"$work/go-peer.log" &
go_pid=$!
pids+=($go_pid)
wait_for_port "$go_port" 30

baseline_port=""
if [ -n "${BASELINE_GATEWAY:-}" ]; then
    baseline_port=$(spare_port 3301)
    # shellcheck disable=SC2086 # BASELINE_ENV is a list of NAME=value words
    env ${BASELINE_ENV:-} OPERYN_REDIS_URL="redis://127.0.0.1:$redis_port" OPERYN_PORT=$baseline_port OPERYN_KEY_PREFIX=baseline \
        OPERYN_LOG_LEVEL=warning OPERYN_BACKLOG_HIGH_WATER=1000000000 "$BASELINE_GATEWAY" 2>"$work/baseline.log" &
    baseline_pid=$!
    pids+=($baseline_pid)
    wait_for_port "$baseline_port" 30
fi

bench_bodies "$work"

# run PORT PATH SECONDS BODY → "requests_per_sec p99_us errors"
run() { wrk_post "$1" "$2" "$3" "$4" "$connections"; }
# measured PID PORT PATH BODY SECONDS → "requests_per_sec p99_us errors cpu_us_per_request redis_cpu_us_per_request"
measured() {
    local before after redis_before redis_after result rps
    # Each measured run starts from an empty Redis: streams grown by the runs before it (up to gigabytes) would
    # charge it for their memory, and the servers run in a fixed order.
    redis-cli -p "$redis_port" flushall sync >/dev/null
    before=$(cpu_ticks "$1")
    redis_before=$(cpu_ticks "$redis_pid")
    result=$(run "$2" "$3" "$5" "$4")
    after=$(cpu_ticks "$1")
    redis_after=$(cpu_ticks "$redis_pid")
    rps=${result%% *}
    echo "$result $(awk -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" -v r="$rps" -v s="$5" 'BEGIN {printf "%.1f", t / hz * 1e6 / (r * s)}')" \
        "$(awk -v t=$((redis_after - redis_before)) -v hz="$(getconf CLK_TCK)" -v r="$rps" -v s="$5" 'BEGIN {printf "%.1f", t / hz * 1e6 / (r * s)}')"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }
rss_mb() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

echo "warm-up…"
run "$ceiling_port" /events/logs 3 "$work/log.json" >/dev/null
run "$gateway_port" /events/logs 3 "$work/log.json" >/dev/null
run "$gateway_port" /events/logs/batch 3 "$work/batch.json" >/dev/null

raw=(); raw_cpu=(); redis_cpu=(); go_redis_cpu=(); ceiling=(); single=(); p99=(); batch=(); cpu=(); base_single=(); base_batch=(); base_cpu=(); go_single=(); go_p99=(); go_batch=(); go_cpu=()
batch_cpu=(); batch_redis=(); go_batch_cpu=(); go_batch_redis=(); base_redis=(); base_batch_cpu=(); base_batch_redis=(); entries=()
# stream_length PREFIX → entries in PREFIX's log streams (every partition's and its overflow stream: one organization at
# this rate overflows; or the one stream of an unpartitioned build)
stream_length() {
    redis-cli -p "$redis_port" --scan --pattern "$1:stream:*logs*" | while read -r stream; do redis-cli -p "$redis_port" xlen "$stream"; done |
        awk '{t += $1} END {print t + 0}'
}
# per_event MICROSECONDS_PER_REQUEST → the same per event of a batch of 100
per_event() { awk -v u="$1" 'BEGIN {printf "%.2f", u / 100}'; }
errors=0
for round in $(seq "$rounds"); do
    read -r r _ e0 rcpu _ < <(measured "$raw_pid" "$raw_port" /events/logs "$work/log.json" "$seconds")
    raw_cpu+=("$rcpu")
    read -r c _ e1 < <(run "$ceiling_port" /events/logs "$seconds" "$work/log.json")
    raw+=("$r")
    read -r s p e2 u ru < <(measured "$gateway_pid" "$gateway_port" /events/logs "$work/log.json" "$seconds")
    length_after=$(stream_length bench)  # measured starts from an empty Redis
    read -r b _ e3 bu bru < <(measured "$gateway_pid" "$gateway_port" /events/logs/batch "$work/batch.json" "$seconds")
    ceiling+=("$c"); single+=("$s"); p99+=("$p"); batch+=("$((b * 100))"); cpu+=("$u"); redis_cpu+=("$ru")
    batch_cpu+=("$(per_event "$bu")"); batch_redis+=("$(per_event "$bru")")
    entries+=("$(awk -v e="$length_after" -v n=$((s * seconds)) 'BEGIN {printf "%.3f", e / n}')")
    errors=$((errors + e0 + e1 + e2 + e3))
    read -r gs gp e6 gu gru < <(measured "$go_pid" "$go_port" /events/logs "$work/log.json" "$seconds")
    read -r gb _ e7 gbu gbru < <(measured "$go_pid" "$go_port" /events/logs/batch "$work/batch.json" "$seconds")
    go_single+=("$gs"); go_p99+=("$gp"); go_batch+=("$((gb * 100))"); go_cpu+=("$gu"); go_redis_cpu+=("$gru")
    go_batch_cpu+=("$(per_event "$gbu")"); go_batch_redis+=("$(per_event "$gbru")")
    errors=$((errors + e6 + e7))
    line="round $round: raw NIO $r, Hummingbird ceiling $c req/s | gateway single $s req/s, p99 $((p / 1000)).$(((p % 1000) / 100)) ms, $u µs CPU/request (+$ru in Redis), ${entries[-1]} entries/request | batch of 100: $((b * 100)) events/s, $(per_event "$bu") µs CPU/event (+$(per_event "$bru") in Redis)"
    line="$line || Go peer single $gs req/s, p99 $((gp / 1000)).$(((gp % 1000) / 100)) ms, $gu µs CPU/request (+$gru in Redis) | batch $((gb * 100)) events/s, $(per_event "$gbu") µs CPU/event (+$(per_event "$gbru") in Redis)"
    if [ -n "$baseline_port" ]; then
        read -r bs _ e4 bu bru < <(measured "$baseline_pid" "$baseline_port" /events/logs "$work/log.json" "$seconds")
        read -r bb _ e5 bbu bbru < <(measured "$baseline_pid" "$baseline_port" /events/logs/batch "$work/batch.json" "$seconds")
        base_single+=("$bs"); base_batch+=("$((bb * 100))"); base_cpu+=("$bu"); base_redis+=("$bru")
        base_batch_cpu+=("$(per_event "$bbu")"); base_batch_redis+=("$(per_event "$bbru")")
        errors=$((errors + e4 + e5))
        line="$line || baseline single $bs req/s, $bu µs CPU/request (+$bru in Redis) | batch $((bb * 100)) events/s, $(per_event "$bbu") µs CPU/event (+$(per_event "$bbru") in Redis)"
    fi
    echo "$line"
done
r=$(printf '%s\n' "${raw[@]}" | median)
c=$(printf '%s\n' "${ceiling[@]}" | median)
s=$(printf '%s\n' "${single[@]}" | median)
p=$(printf '%s\n' "${p99[@]}" | median)
b=$(printf '%s\n' "${batch[@]}" | median)
u=$(printf '%s\n' "${cpu[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median single: gateway $s req/s vs Hummingbird ceiling $c req/s = $(awk -v s="$s" -v c="$c" 'BEGIN {printf "%.2f", s / c}'); gateway CPU $u µs per request"
rc=$(printf '%s\n' "${raw_cpu[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "against the raw NIO 202 server: $s / $r req/s = $(awk -v s="$s" -v r="$r" 'BEGIN {printf "%.2f", s / r}') (goal >= 0.45); CPU per request $u / $rc µs = $(awk -v a="$u" -v b="$rc" 'BEGIN {printf "%.2f", a / b}') × (goal <= 2.0)"
middle() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# CPU per single-event request as the event-loop goal reads it: wrk with one thread (-t1 -c64), so the load generator
# takes less of the 2 cores, alternating the raw NIO server, the gateway, the Go peer and the baseline in each round.
t1_raw=(); t1_gateway=(); t1_go=(); t1_base=()
for round in $(seq "$rounds"); do
    t1_raw+=("$(WRK_THREADS=1 measured "$raw_pid" "$raw_port" /events/logs "$work/log.json" "$seconds" | awk '{print $4}')")
    t1_gateway+=("$(WRK_THREADS=1 measured "$gateway_pid" "$gateway_port" /events/logs "$work/log.json" "$seconds" | awk '{print $4}')")
    t1_go+=("$(WRK_THREADS=1 measured "$go_pid" "$go_port" /events/logs "$work/log.json" "$seconds" | awk '{print $4}')")
    line="wrk -t1 round $round: CPU per single-event request: raw NIO ${t1_raw[-1]} µs, gateway ${t1_gateway[-1]}, Go peer ${t1_go[-1]}"
    if [ -n "$baseline_port" ]; then
        t1_base+=("$(WRK_THREADS=1 measured "$baseline_pid" "$baseline_port" /events/logs "$work/log.json" "$seconds" | awk '{print $4}')")
        line="$line, baseline ${t1_base[-1]}"
    fi
    echo "$line"
done
tr=$(printf '%s\n' "${t1_raw[@]}" | middle); tg=$(printf '%s\n' "${t1_gateway[@]}" | middle); tgo=$(printf '%s\n' "${t1_go[@]}" | middle)
echo "wrk -t1 medians: CPU per single-event request gateway $tg µs / raw NIO $tr = $(awk -v a="$tg" -v b="$tr" 'BEGIN {printf "%.2f", a / b}') × (goal <= 2.0); / the Go peer's $tgo = $(awk -v a="$tg" -v b="$tgo" 'BEGIN {printf "%.2f", a / b}') × (goal <= 0.6)"
if [ -n "$baseline_port" ]; then
    tb=$(printf '%s\n' "${t1_base[@]}" | middle)
    echo "wrk -t1 medians: the gateway's CPU per single-event request / the baseline's $tb µs = $(awk -v a="$tg" -v b="$tb" 'BEGIN {printf "%.2f", a / b}') ×"
fi
echo "Redis CPU per single-event request: the gateway's $(printf '%s\n' "${redis_cpu[@]}" | middle) µs, the Go peer's $(printf '%s\n' "${go_redis_cpu[@]}" | middle) µs"
echo "median p99 single at $connections connections: $(awk -v p="$p" 'BEGIN {printf "%.2f", p / 1000}') ms"
echo "median batch of 100: $b events/s; CPU per event: gateway $(printf '%s\n' "${batch_cpu[@]}" | middle) µs, Redis $(printf '%s\n' "${batch_redis[@]}" | middle) µs (goal <= 1); the Go peer's $(printf '%s\n' "${go_batch_cpu[@]}" | middle) µs (+$(printf '%s\n' "${go_batch_redis[@]}" | middle) in Redis)"
echo "stream entries per single-event request (below 1: requests of one event-loop tick share an entry): $(printf '%s\n' "${entries[@]}" | middle)"
gs=$(printf '%s\n' "${go_single[@]}" | median)
gp=$(printf '%s\n' "${go_p99[@]}" | median)
gb=$(printf '%s\n' "${go_batch[@]}" | median)
gu=$(printf '%s\n' "${go_cpu[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "against the Go peer: single $s / $gs req/s = $(awk -v a="$s" -v b="$gs" 'BEGIN {printf "%.2f", a / b}') (goal >= 2), p99 $(awk -v a="$p" -v b="$gp" 'BEGIN {printf "%.2f / %.2f ms = %.2f", a / 1000, b / 1000, a / b}') (goal <= 0.5), batch $b / $gb events/s = $(awk -v a="$b" -v b="$gb" 'BEGIN {printf "%.2f", a / b}'), CPU per request $u / $gu µs"
if [ -n "$baseline_port" ]; then
    bs=$(printf '%s\n' "${base_single[@]}" | median)
    bb=$(printf '%s\n' "${base_batch[@]}" | median)
    bu=$(printf '%s\n' "${base_cpu[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
    echo "against the baseline ($BASELINE_GATEWAY ${BASELINE_ENV:-}): single $s / $bs req/s = $(awk -v a="$s" -v b="$bs" 'BEGIN {printf "%.2f", a / b}'), batch $b / $bb events/s = $(awk -v a="$b" -v b="$bb" 'BEGIN {printf "%.2f", a / b}'), CPU per request $u / $bu µs = $(awk -v a="$u" -v b="$bu" 'BEGIN {printf "%.2f", a / b}')"
    ru=$(printf '%s\n' "${redis_cpu[@]}" | middle); bru=$(printf '%s\n' "${base_redis[@]}" | middle)
    gbe=$(printf '%s\n' "${batch_cpu[@]}" | middle); bbe=$(printf '%s\n' "${base_batch_cpu[@]}" | middle)
    echo "  Redis CPU per single-event request $ru / $bru µs = $(awk -v a="$ru" -v b="$bru" 'BEGIN {printf "%.2f", a / b}') (goal <= 0.5 against the build before chunks); gateway CPU per batch event $gbe / $bbe µs = $(awk -v a="$gbe" -v b="$bbe" 'BEGIN {printf "%.2f", a / b}') (goal <= 0.5); Redis CPU per batch event $(printf '%s\n' "${batch_redis[@]}" | middle) / $(printf '%s\n' "${base_batch_redis[@]}" | middle) µs"
fi
echo "socket errors or non-2xx answers: $errors"

# syscalls PID PORT NAME → one line: futex, read, write and epoll_wait calls per request over 5 s of single-event
# load with strace -c -f attached (strace slows the process; the counts per request are what matters).
syscalls() {
    local out="$work/strace-$3.txt" tracer rps
    strace -c -f -p "$1" -o "$out" 2>/dev/null &
    tracer=$!
    sleep 1
    rps=$(run "$2" /events/logs 5 "$work/log.json" | awk '{print $1}')
    kill -INT "$tracer" 2>/dev/null
    wait "$tracer" 2>/dev/null || true
    if [ ! -s "$out" ] || [ -z "$rps" ] || [ "$rps" = 0 ]; then
        echo "$3: strace could not attach here (ptrace not permitted); syscalls not counted"
        return
    fi
    awk -v n="$((rps * 5))" -v name="$3" '
        $NF == "futex" { f = $4 } $NF == "read" || $NF == "recvfrom" || $NF == "readv" { r += $4 }
        $NF == "write" || $NF == "writev" || $NF == "sendmsg" || $NF == "sendto" { w += $4 } $NF == "epoll_wait" || $NF == "epoll_pwait" { e += $4 }
        END { printf "%s: per request %.2f futex, %.2f read, %.2f write, %.2f epoll_wait (%d requests traced)\n", name, f / n, r / n, w / n, e / n, n }' "$out"
}
echo "system calls per request (strace -c -f, 64 connections; goal: gateway <= 0.2 futex):"
syscalls "$gateway_pid" "$gateway_port" gateway
syscalls "$go_pid" "$go_port" "Go peer"
[ -n "$baseline_port" ] && syscalls "$baseline_pid" "$baseline_port" baseline

# fair PORT → "p99_us timeouts max_us requests_per_sec" at 2 000 connections for 10 s
fair() {
    BODY_FILE="$work/log.json" wrk -t2 -c2000 -d10s --timeout 2s --latency -s Benchmarks/wrk/post.lua "http://127.0.0.1:$1/events/logs" |
        awk '/^RESULT/ { split($2,a,"="); split($4,b,"="); split($7,c,"="); split($8,d,"="); print b[2], c[2], d[2], a[2] }'
}
echo "fairness at 2 000 connections (wrk -t2 -c2000 -d10s, timeout 2 s; goal: no timeouts, p99 <= the Go peer's):"
read -r fp ft fm fr < <(fair "$gateway_port")
read -r gfp gft gfm gfr < <(fair "$go_port")
echo "gateway: p99 $(awk -v p="$fp" 'BEGIN {printf "%.0f", p / 1000}') ms, max $(awk -v p="$fm" 'BEGIN {printf "%.0f", p / 1000}') ms, $ft timeouts, $fr req/s || Go peer: p99 $(awk -v p="$gfp" 'BEGIN {printf "%.0f", p / 1000}') ms, max $(awk -v p="$gfm" 'BEGIN {printf "%.0f", p / 1000}') ms, $gft timeouts, $gfr req/s"
if [ -n "$baseline_port" ]; then
    read -r bfp bft bfm bfr < <(fair "$baseline_port")
    echo "baseline: p99 $(awk -v p="$bfp" 'BEGIN {printf "%.0f", p / 1000}') ms, max $(awk -v p="$bfm" 'BEGIN {printf "%.0f", p / 1000}') ms, $bft timeouts, $bfr req/s"
fi

echo "memory: ${soak}s of single-event load…"
before=$(rss_mb "$gateway_pid")
run "$gateway_port" /events/logs $((soak / 2)) "$work/log.json" >/dev/null
middle=$(rss_mb "$gateway_pid")
run "$gateway_port" /events/logs $((soak / 2)) "$work/log.json" >/dev/null
after=$(rss_mb "$gateway_pid")
echo "gateway RSS: ${before} MB before, ${middle} MB at $((soak / 2)) s, ${after} MB at ${soak} s"
echo "stream length: $(stream_length bench) entries"
