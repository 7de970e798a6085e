#!/usr/bin/env bash
# Worker throughput: preloads COUNT mixed events (logs, metrics, deployments) into the streams, starts
# WORKERS release workers, and times until the group's lag and pending are zero and every row is stored;
# prints events/s and the workers' peak resident memory, for SQLite and for PostgreSQL; ROUNDS times each
# (a fresh database and fresh streams every round), then the median.
# Usage: scripts/bench-worker.sh [COUNT] [WORKERS] [ENGINES] [ROUNDS]   (defaults 1000000, 2, "sqlite postgres", 3)
# WORKER_ENV_B="NAME=value …" runs every round a second time with those variables in the workers' environment
# (an A/B of a runtime setting, such as GLIBC_TUNABLES=glibc.malloc.mxfast=0) and prints both medians and B/A.
# Every round (of this build) also measures the database's own load rate of the same rows, the sink ceiling:
# SQLite, operyn-sink-ceiling (the sample events through the worker's prepared INSERT, one transaction per 1 000
# rows, the same schema, indexes and pragmas); PostgreSQL, COPY of the rows the workers just stored back into the
# same, emptied tables. It prints the drain's ratio to it.
# BASELINE_WORKER=/path/to/an/older/operyn-worker runs every round a second time with that build instead (the way
# to show a change does not regress the worker; B is then the baseline).
# PG_TLS_B=1 starts PostgreSQL with TLS on (a throwaway CA from scripts/make-test-certs.sh) and runs every round
# twice: A with sslmode=disable, B with sslmode=require (the TLS goal: B >= 0.9 x A).
# RETENTION_B=1 runs every round twice: B with a million rows of an organization whose retention (1 day, an
# override) has passed already in the database, and the workers running retention every second, so that bounded
# deletes expire them while the workers drain (the goal: B >= 0.8 x A); it prints how many were left at the end.
# For PostgreSQL it then times dropping a day partition of a million rows (the goal: under a second).
# PACK_B=1 runs every round twice: B with the same events preloaded packed (format version 3, zstd, as a gateway
# writes entries past OPERYN_QUEUE_COMPRESS_BYTES, PACK_BYTES, default 8192), A plain (version 2); the goal B >= 0.95 × A.
# PER_ENTRY (default 100) is how many events each preloaded stream entry holds: chunks as batch requests make them;
# PER_ENTRY=1 preloads one format-1 entry per event, as gateways before chunks wrote (what an older
# BASELINE_WORKER can read). The streams are those of OPERYN_STREAM_PARTITIONS (default 16) partitions, each event in
# its organization's; a BASELINE_WORKER's are the layout before partitions (BASELINE_PARTITIONS, default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config postgresql sqlite3

count=${1:-1000000}
workers=${2:-2}
engines=${3:-sqlite postgres}
rounds=${4:-3}

build_release
variants=(A)
[ -n "${WORKER_ENV_B:-}" ] || [ -n "${BASELINE_WORKER:-}" ] || [ -n "${PG_TLS_B:-}" ] || [ -n "${RETENTION_B:-}" ] || [ -n "${PACK_B:-}" ] && variants=(A B)
b_label=${BASELINE_WORKER:+the baseline $BASELINE_WORKER}
[ -n "${PG_TLS_B:-}" ] && b_label="PostgreSQL with sslmode=require"
[ -n "${RETENTION_B:-}" ] && b_label="with retention expiring 1 000 000 rows during the drain"
[ -n "${PACK_B:-}" ] && b_label="with the backlog packed (format 3, zstd)"
b_label=${b_label:-with ${WORKER_ENV_B:-}}

with_scratch wkbench

redis_port=$(spare_port 6450)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes --appendfsync everysec \
    --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
redis_pid=$!
pids+=($redis_pid)
wait_for_port "$redis_port" 10
redis_url="redis://127.0.0.1:$redis_port"

if [[ " $engines " == *" postgres "* ]]; then
    pg_port=$(spare_port 5450)
    # Durable settings (fsync on, synchronous_commit on): the benchmark measures what production gets.
    if [ -n "${PG_TLS_B:-}" ]; then
        bash scripts/make-test-certs.sh "$work/tls"
        init_postgres "$work/pg"
        cp "$work/tls/server.pem" "$work/tls/server.key" "$work/pg/data/"
        chmod 600 "$work/pg/data/server.key"
        [ "$(id -u)" -eq 0 ] && chown postgres "$work/pg/data/server.pem" "$work/pg/data/server.key"
        run_postgres "$work/pg" "$pg_port" ssl=on ssl_cert_file=server.pem ssl_key_file=server.key
    else
        start_postgres "$work/pg" "$pg_port"
    fi
fi

# The event streams of the round (every partition's that the preload wrote), one per line.
event_streams() {
    redis-cli -p "$redis_port" --scan --pattern "$1:stream:*" | grep -Ev ':stream:(deadletter|rejected)$'
}

# Undelivered + pending entries of the event streams, from one redis-cli (the poll should cost the workers nothing).
backlog() {
    for stream in $streams; do printf 'XINFO GROUPS %s\n' "$stream"; done |
        redis-cli -p "$redis_port" 2>/dev/null |
        awk '/^pending$/ {getline; t += $1} /^lag$/ {getline; t += $1} END {print t + 0}'
}

# sql ENGINE DB SQL: runs SQL on the round's database.
sql() {
    case $1 in
        sqlite) sqlite3 "$work/$2/operyn.sqlite" "$3" ;;
        postgres) psql -h 127.0.0.1 -p "$pg_port" -U operyn -d "bench${2#postgres-}" -qtAc "$3" ;;
    esac
}

# expiring ENGINE DB DATABASE_URL PREFIX: makes the round's schema (a worker started on an empty prefix), loads a
# million logs of the organization `expiring` accepted three days ago, and gives it a retention of one day.
expiring() {
    local engine=$1 db=$2 database=$3 prefix=$4
    OPERYN_REDIS_URL=$redis_url OPERYN_KEY_PREFIX="$prefix-schema" OPERYN_DATABASE_URL=$database OPERYN_METRICS_PORT=0 \
        OPERYN_LOG_LEVEL=warning "$bin/operyn-worker" 2>>"$work/worker.log" &
    local pid=$!
    until [ "$(sql "$engine" "$db" "SELECT COUNT(*) FROM schema_migrations" 2>/dev/null)" = 2 ]; do sleep 0.2; done
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    case $engine in
        sqlite) sql sqlite "$db" "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < 1000000)
            INSERT INTO logs (id, org_id, service, level, message, timestamp, received_at)
            SELECT printf('00000000-0000-4000-8000-%012d', n), 'expiring', 'api', 'info', 'an expired event of some length ' || n,
                strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-3 days'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-3 days') FROM g" ;;
        postgres) sql postgres "$db" "SELECT operyn_ensure_partition('logs', (now() - interval '3 days')::date);
            INSERT INTO logs (id, org_id, service, level, message, timestamp, received_at)
            SELECT gen_random_uuid(), 'expiring', 'api', 'info', 'an expired event of some length ' || n, now() - interval '3 days',
                now() - interval '3 days' FROM generate_series(1, 1000000) n" >/dev/null ;;
    esac
    redis-cli -p "$redis_port" hset "$prefix:org:expiring:settings" retention_days 1 >/dev/null
    redis-cli -p "$redis_port" sadd "$prefix:retention:orgs" expiring >/dev/null
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

for engine in $engines; do
    declare -A rates_of=() cpu_of=()
    peaks=()
    ceilings=()
    ratios=()
    for round in $(seq "$rounds"); do
      for variant in "${variants[@]}"; do
        extra=()
        worker="$bin/operyn-worker"
        [ "$variant" = B ] && [ -n "${WORKER_ENV_B:-}" ] && read -r -a extra <<<"$WORKER_ENV_B"
        partitions=${OPERYN_STREAM_PARTITIONS:-16}
        # An older worker reads the layout before partitions: one stream per kind.
        [ "$variant" = B ] && [ -n "${BASELINE_WORKER:-}" ] && worker=$BASELINE_WORKER && partitions=${BASELINE_PARTITIONS:-1}
        suffix="$round$(tr AB ab <<<"$variant")"  # PostgreSQL folds unquoted database names to lower case
        prefix="bench-$engine-$suffix"
        db="$engine-$suffix"
        case $engine in
            sqlite) database="sqlite:$work/$db/operyn.sqlite" ;;
            postgres)
                psql -h 127.0.0.1 -p "$pg_port" -U operyn -d postgres -qc "CREATE DATABASE bench$suffix" >/dev/null
                database="postgres://operyn@127.0.0.1:$pg_port/bench$suffix"
                if [ -n "${PG_TLS_B:-}" ]; then
                    [ "$variant" = B ] && database="$database?sslmode=require" || database="$database?sslmode=disable"
                fi
                ;;
        esac
        if [ "$variant" = B ] && [ -n "${RETENTION_B:-}" ]; then
            echo "[$engine] loading 1 000 000 rows whose retention has passed…"
            expiring "$engine" "$db" "$database" "$prefix"
            extra=(OPERYN_RETENTION_INTERVAL_SECONDS=1)
        fi
        echo "[$engine] preloading $count events, ${PER_ENTRY:-100} per entry…"
        pack=0
        [ "$variant" = B ] && [ -n "${PACK_B:-}" ] && pack=${PACK_BYTES:-8192}
        OPERYN_QUEUE_COMPRESS_BYTES=$pack OPERYN_STREAM_PARTITIONS=$partitions "$bin/operyn-redis-bench" preload "$redis_url" "$prefix" "$count" "${PER_ENTRY:-100}" >/dev/null
        # Start from a settled Redis: rewrite the AOF the preload grew now, so that rewriting the preloaded
        # backlog (a fork compressing a million entries) does not run during the measurement.
        redis-cli -p "$redis_port" bgrewriteaof >/dev/null 2>&1 || true
        sleep 0.2
        until redis-cli -p "$redis_port" info persistence | grep -q '^aof_rewrite_in_progress:0'; do sleep 0.2; done
        redis-cli -p "$redis_port" config resetstat >/dev/null   # also zeroes aof_rewrites
        start=$(date +%s.%N)
        redis_ticks_start=$(cpu_ticks "$redis_pid")
        worker_pids=()
        for i in $(seq "$workers"); do
            env "${extra[@]}" OPERYN_STREAM_PARTITIONS=$partitions OPERYN_REDIS_URL=$redis_url OPERYN_KEY_PREFIX=$prefix OPERYN_DATABASE_URL=$database OPERYN_METRICS_PORT=0 \
                OPERYN_CONSUMER_NAME="bench-$i" OPERYN_LOG_LEVEL=warning "$worker" 2>>"$work/worker.log" &
            worker_pids+=($!)
            pids+=($!)
        done
        # The backlog reads 0 until the workers have made the consumer group: wait for it first.
        streams=$(event_streams "$prefix")
        for stream in $streams; do
            until redis-cli -p "$redis_port" xinfo groups "$stream" 2>/dev/null | grep -q workers; do sleep 0.1; done
        done
        until [ "$(backlog "$prefix")" -eq 0 ]; do
            for pid in "${worker_pids[@]}"; do
                kill -0 "$pid" 2>/dev/null || { echo "[$engine] a worker exited early:" >&2; tail -3 "$work/worker.log" >&2; exit 1; }
            done
            sleep 0.2
        done
        end=$(date +%s.%N)
        # CPU the workers used (from /proc, steadier than the rate on a shared machine), and Redis's.
        ticks=0
        for pid in "${worker_pids[@]}"; do ticks=$((ticks + $(cpu_ticks "$pid"))); done
        redis_ticks=$(($(cpu_ticks "$redis_pid") - redis_ticks_start))
        peak=0
        for pid in "${worker_pids[@]}"; do
            rss=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status")
            [ "$rss" -gt "$peak" ] && peak=$rss
            kill -TERM "$pid"
        done
        for pid in "${worker_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
        rows=$(sql "$engine" "$db" "SELECT (SELECT COUNT(*) FROM logs WHERE org_id <> 'expiring') + (SELECT COUNT(*) FROM metrics) + (SELECT COUNT(*) FROM deployments)")
        if [ "$variant" = B ] && [ -n "${RETENTION_B:-}" ]; then
            echo "[$engine] expired rows left when the drain ended: $(sql "$engine" "$db" "SELECT COUNT(*) FROM logs WHERE org_id = 'expiring'") of 1000000"
        fi
        seconds=$(awk -v s="$start" -v e="$end" 'BEGIN {printf "%.2f", e - s}')
        rate=$(awk -v n="$count" -v s="$seconds" 'BEGIN {printf "%.0f", n / s}')
        # Where Redis spent its time for the workers (microseconds of its one main thread, per command).
        redis-cli -p "$redis_port" info commandstats | tr -d '\r' |
            awk -F'[:,=]' '/^cmdstat_/ && $5 > 100000 {printf "%s%s %.1f s", sep, substr($1, 9), $5 / 1e6; sep = ", "} END {print ""}' |
            sed "s/^/[$engine] redis time: /"
        echo "[$engine] AOF rewrites during the run: $(redis-cli -p "$redis_port" info persistence | tr -d '\r' | awk -F: '/^aof_rewrites:/ {print $2}')"
        echo "[$engine] round $round$([ "${#variants[@]}" -gt 1 ] && echo " ($variant)"): $workers workers stored $rows of $count events in $seconds s: $rate events/s; peak worker RSS ${peak} MB; CPU per event: workers $(awk -v t="$ticks" -v n="$count" 'BEGIN {printf "%.2f", t * 10000 / n}') µs, Redis $(awk -v t="$redis_ticks" -v n="$count" 'BEGIN {printf "%.2f", t * 10000 / n}') µs"
        cpu_of[$variant]="${cpu_of[$variant]:-} $(awk -v t="$ticks" -v n="$count" 'BEGIN {printf "%.3f", t * 10000 / n}')"
        [ "$rows" -eq "$count" ] || { echo "[$engine] round $round stored $rows rows, not $count" >&2; exit 1; }
        rates_of[$variant]="${rates_of[$variant]:-} $rate"
        if [ "$variant" = A ]; then
            case $engine in
                sqlite) ceiling=$("$bin/operyn-sink-ceiling" "sqlite:$work/ceiling-$suffix/operyn.sqlite" "$count") ;;
                postgres)
                    pg=(psql -h 127.0.0.1 -p "$pg_port" -U operyn -d "bench$suffix" -q)
                    for table in logs metrics deployments; do "${pg[@]}" -c "\\copy (SELECT * FROM $table) TO '$work/$table.csv' CSV"; done
                    "${pg[@]}" -c "TRUNCATE logs, metrics, deployments"
                    copy_start=$(date +%s.%N)
                    for table in logs metrics deployments; do "${pg[@]}" -c "\\copy $table FROM '$work/$table.csv' CSV"; done
                    copy_end=$(date +%s.%N)
                    ceiling=$(awk -v n="$rows" -v s="$copy_start" -v e="$copy_end" 'BEGIN {printf "%.0f", n / (e - s)}')
                    ;;
            esac
            ceilings+=("$ceiling")
            ratios+=("$(awk -v r="$rate" -v c="$ceiling" 'BEGIN {printf "%.3f", r / c}')")
            echo "[$engine] round $round sink ceiling: $ceiling rows/s; the drain is $(awk -v r="$rate" -v c="$ceiling" 'BEGIN {printf "%.2f", r / c}') × it"
        fi
        peaks+=("$peak")
        # shellcheck disable=SC2086
        redis-cli -p "$redis_port" del $streams >/dev/null
      done
    done
    a=$(printf '%s\n' ${rates_of[A]} | median)
    echo "[$engine] median of $rounds: $a events/s; peak worker RSS at most $(printf '%s\n' "${peaks[@]}" | sort -n | tail -1) MB"
    echo "[$engine] sink ceiling: median $(printf '%s\n' "${ceilings[@]}" | median) rows/s; drain / ceiling per round: ${ratios[*]}, median $(printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}') (goal: >= 0.6)"
    if [ "${#variants[@]}" -gt 1 ]; then
        b=$(printf '%s\n' ${rates_of[B]} | median)
        echo "[$engine] $b_label: median $b events/s; this build / B = $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.2f", a / b}')"
        ca=$(printf '%s\n' ${cpu_of[A]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        cb=$(printf '%s\n' ${cpu_of[B]} | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
        echo "[$engine] workers' CPU per event (median): this build $ca µs, B $cb µs = $(awk -v a="$ca" -v b="$cb" 'BEGIN {printf "%.2f", a / b}') ×"
    fi
    if [ "$engine" = postgres ] && [ -n "${RETENTION_B:-}" ]; then
        # Dropping a day partition of a million rows, as retention does (the catalog row with it).
        db="postgres-${rounds}a"
        sql postgres "$db" "SELECT operyn_ensure_partition('logs', '2020-01-01');
            INSERT INTO logs (id, org_id, service, level, message, timestamp, received_at)
            SELECT gen_random_uuid(), 'old', 'api', 'info', 'an old event of some length ' || n, '2020-01-01', timestamptz '2020-01-01 00:00:00+00' + n * interval '50 ms'
            FROM generate_series(1, 1000000) n; CHECKPOINT" >/dev/null
        echo "[$engine] a day partition of $(sql postgres "$db" "SELECT COUNT(*) FROM logs_p20200101") rows, $(sql postgres "$db" "SELECT pg_size_pretty(pg_total_relation_size('logs_p20200101'))")"
        drop_start=$(date +%s.%N)
        sql postgres "$db" "BEGIN; SET LOCAL lock_timeout = '50ms'; DROP TABLE logs_p20200101; DELETE FROM operyn_partitions WHERE name = 'logs_p20200101'; COMMIT"
        drop_end=$(date +%s.%N)
        echo "[$engine] dropped it in $(awk -v s="$drop_start" -v e="$drop_end" 'BEGIN {printf "%.3f", e - s}') s (psql's start included; the goal: under 1 s)"
    fi
    unset rates_of
done
