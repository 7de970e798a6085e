# Helpers shared by the run and test scripts (sourced, not run).

# ensure_packages PKG...: installs the Debian packages that are missing. As root it runs
# apt-get update once and installs them; otherwise it prints the exact command and fails.
ensure_packages() {
    local missing=()
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ]; then
        echo "installing: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing packages; run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
}

# port_in_use PORT: whether something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# spare_port FROM: the first port from FROM upwards that nothing listens on.
spare_port() {
    local port=$1
    while port_in_use "$port"; do port=$((port + 1)); done
    echo "$port"
}

# wait_for_port PORT SECONDS: waits until the port accepts connections.
wait_for_port() {
    local deadline=$((SECONDS + $2))
    until port_in_use "$1"; do
        [ $SECONDS -ge $deadline ] && { echo "nothing listens on port $1 after $2 s" >&2; return 1; }
        sleep 0.1
    done
}

# pg_bin: the newest installed PostgreSQL's binaries.
pg_bin() { ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1; }

# as_pg CMD...: runs CMD as the postgres user when root (PostgreSQL refuses to run as root).
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# start_postgres DIR PORT [SETTING...]: a throwaway cluster in DIR (superuser operyn, trust auth) on
# 127.0.0.1:PORT, with extra `-c` settings; socket and log in DIR/sock. DIR's parents must be
# traversable by the postgres user when root.
start_postgres() {
    local dir=$1 port=$2
    shift 2
    init_postgres "$dir"
    run_postgres "$dir" "$port" "$@"
}

# start_postgres_tls DIR PORT CERTS [SETTING...]: as start_postgres, but TLS only (`ssl = on` with CERTS/server.pem,
# and a pg_hba.conf of `hostssl` lines alone: a plain connection is refused). The user operyn_app signs in with the
# password s3cret (scram-sha-256), every other user by trust.
start_postgres_tls() {
    local dir=$1 port=$2 certs=$3
    shift 3
    init_postgres "$dir"
    cp "$certs/server.pem" "$dir/data/server.pem"
    cp "$certs/server.key" "$dir/data/server.key"
    chmod 600 "$dir/data/server.key"
    [ "$(id -u)" -eq 0 ] && chown postgres "$dir/data/server.pem" "$dir/data/server.key"
    cat >"$dir/data/pg_hba.conf" <<'HBA'
local all all trust
hostssl all operyn_app 127.0.0.1/32 scram-sha-256
hostssl all all 127.0.0.1/32 trust
HBA
    run_postgres "$dir" "$port" ssl=on ssl_cert_file=server.pem ssl_key_file=server.key "$@"
    as_pg "$(pg_bin)/psql" -h "$dir/sock" -p "$port" -U operyn -d postgres -q \
        -c "CREATE ROLE operyn_app LOGIN SUPERUSER PASSWORD 's3cret'" >/dev/null
}

# init_postgres DIR: initdb into DIR/data (superuser operyn, trust auth).
init_postgres() {
    local dir=$1
    mkdir -p "$dir/data" "$dir/sock"
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown -R postgres "$dir/data" "$dir/sock"
    as_pg "$(pg_bin)/initdb" -D "$dir/data" -A trust -U operyn >"$dir/sock/initdb.log" 2>&1
}

# run_postgres DIR PORT [SETTING...]: starts the cluster of DIR on 127.0.0.1:PORT with extra `-c` settings.
run_postgres() {
    local dir=$1 port=$2
    shift 2
    local settings="-p $port -k $dir/sock -c listen_addresses=127.0.0.1"
    for setting in "$@"; do settings="$settings -c $setting"; done
    as_pg "$(pg_bin)/pg_ctl" -D "$dir/data" -w -l "$dir/sock/postgres.log" -o "$settings" start >/dev/null
}

# stop_postgres DIR: stops the cluster start_postgres made in DIR, if any.
stop_postgres() {
    [ -d "$1/data" ] && as_pg "$(pg_bin)/pg_ctl" -D "$1/data" -m fast stop >/dev/null 2>&1
    return 0
}

# with_scratch NAME: makes a scratch folder $work (/tmp/operyn-NAME.XXXXXX, reachable by the postgres user) and
# arranges that on exit every pid added to $pids is stopped, a PostgreSQL started under $work/pg is stopped, and
# $work is removed.
with_scratch() {
    work=$(mktemp -d "/tmp/operyn-$1.XXXXXX")
    chmod 755 "$work"
    pids=()
    trap scratch_cleanup EXIT
}
scratch_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_postgres "$work/pg"
    rm -rf "$work"
}

# build_release: builds every executable in release mode in one invocation, with the dependency versions
# Package.resolved names (--force-resolved-versions: no resolution, no surprise upgrades), and sets $bin to
# their folder. Says what it does and how long a first build takes, so that nobody thinks it hangs.
build_release() {
    bin=$(swift build -c release --show-bin-path)
    if [ ! -x "$bin/operyn-gateway" ] || [ ! -x "$bin/operyn-worker" ] || [ ! -x "$bin/operyn-admin" ]; then
        echo "building operyn-gateway, operyn-worker and operyn-admin (release): the first build takes about"
        echo "10-15 minutes on 2 cores (SwiftNIO, Hummingbird, postgres-nio, swift-crypto); later builds seconds…"
    else
        echo "building (release, incremental)…"
    fi
    local started=$SECONDS log
    log=$(mktemp)
    if ! swift build -c release --force-resolved-versions >"$log" 2>&1; then
        grep -E "error" "$log" | head -20 >&2
        echo "the release build failed (full output: $log)" >&2
        return 1
    fi
    rm -f "$log"
    echo "built in $((SECONDS - started)) s"
}

# spare_cluster_ports FROM: the first port from FROM upwards such that it, the 5 after it and their cluster bus ports
# (each + 10000) are free.
spare_cluster_ports() {
    local port=$1 offset
    while true; do
        for offset in 0 1 2 3 4 5; do
            if port_in_use $((port + offset)) || port_in_use $((port + offset + 10000)); then
                port=$((port + offset + 1))
                continue 2
            fi
        done
        echo "$port"
        return
    done
}

# start_redis_cluster DIR FIRST_PORT [CERTS]: a throwaway Redis Cluster on 127.0.0.1 of 6 nodes, ports FIRST_PORT to
# FIRST_PORT+5 (3 masters, each with a replica; AOF on), each node's files and log in DIR/<port>. With CERTS (a folder
# of make-test-certs.sh), TLS only: clients, the cluster bus and replication (`--tls-cluster`, `--tls-replication`).
# Prints the pids, one a line, to DIR/pids. Fails unless every slot is served within 30 s.
start_redis_cluster() {
    local dir=$1 first=$2 certs=${3:-} port nodes=() cli=(redis-cli)
    mkdir -p "$dir"
    : >"$dir/pids"
    for port in $(seq "$first" $((first + 5))); do
        mkdir -p "$dir/$port"
        local listen=(--port "$port")
        if [ -n "$certs" ]; then
            listen=(--port 0 --tls-port "$port" --tls-cluster yes --tls-replication yes --tls-auth-clients no
                --tls-cert-file "$certs/server.pem" --tls-key-file "$certs/server.key" --tls-ca-cert-file "$certs/ca.pem")
        fi
        redis-server "${listen[@]}" --bind 127.0.0.1 --dir "$dir/$port" --cluster-enabled yes \
            --cluster-config-file nodes.conf --cluster-node-timeout 2000 --appendonly yes --save "" \
            --maxmemory-policy noeviction --daemonize no --loglevel warning >"$dir/$port/redis.log" 2>&1 &
        echo $! >>"$dir/pids"
        nodes+=("127.0.0.1:$port")
    done
    [ -n "$certs" ] && cli+=(--tls --cacert "$certs/ca.pem")
    for port in $(seq "$first" $((first + 5))); do wait_for_port "$port" 10; done
    "${cli[@]}" --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1
    local deadline=$((SECONDS + 30))
    until "${cli[@]}" -p "$first" cluster info 2>/dev/null | grep -q "cluster_state:ok" &&
        [ "$("${cli[@]}" -p "$first" cluster nodes | grep -c slave)" -eq 3 ]; do
        [ $SECONDS -ge $deadline ] && { echo "the Redis Cluster on $first-$((first + 5)) is not ready after 30 s" >&2; cat "$dir/create.log" >&2; return 1; }
        sleep 0.2
    done
}

# stop_redis_cluster DIR: stops the nodes start_redis_cluster started in DIR, if any.
stop_redis_cluster() {
    [ -f "$1/pids" ] || return 0
    local pid
    for pid in $(cat "$1/pids"); do kill "$pid" 2>/dev/null || true; done
    for pid in $(cat "$1/pids"); do while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done; done
    rm -f "$1/pids"
}

# bench_bodies DIR: the benchmarks' request bodies: DIR/log.json (the spec's log example) and DIR/batch.json (100 logs).
bench_bodies() {
    cat >"$1/log.json" <<'JSON'
{"service":"api-gateway","level":"error","message":"Upstream timeout connecting to auth-service","traceId":"abc-123-def","metadata":{"region":"us-east-1","env":"prod","team":"platform"}}
JSON
    {
        printf '['
        for i in $(seq 100); do
            [ "$i" -gt 1 ] && printf ','
            printf '{"service":"billing-service","level":"warn","message":"Retry attempt %d for payment gateway","metadata":{"region":"eu-west-1"}}' "$i"
        done
        printf ']'
    } >"$1/batch.json"
}

# start_bench_redis FROM: a benchmark's redis-server (AOF, appendfsync everysec, noeviction) in $work on the first spare
# port from FROM; sets $redis_port and $redis_pid and adds it to $pids (see with_scratch).
start_bench_redis() {
    redis_port=$(spare_port "$1")
    redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly yes --appendfsync everysec \
        --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
    redis_pid=$!
    pids+=($redis_pid)
    wait_for_port "$redis_port" 10
}

# start_bench_gateway FROM: the release operyn-gateway ($bin) of a benchmark on its Redis ($redis_port), prefix bench,
# no backpressure, on the first spare port from FROM; sets $gateway_port and $gateway_pid, adds it to $pids and waits
# until it listens.
start_bench_gateway() {
    gateway_port=$(spare_port "$1")
    OPERYN_REDIS_URL="redis://127.0.0.1:$redis_port" OPERYN_PORT=$gateway_port OPERYN_KEY_PREFIX=bench OPERYN_LOG_LEVEL=warning \
        OPERYN_BACKLOG_HIGH_WATER=1000000000 "$bin/operyn-gateway" 2>"$work/gateway.log" &
    gateway_pid=$!
    pids+=($gateway_pid)
    wait_for_port "$gateway_port" 30
}

# cpu_ticks PID → user + system clock ticks the process has used (/proc/PID/stat fields 14 and 15).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# wrk_post PORT PATH SECONDS BODY_FILE [CONNECTIONS] → "requests_per_sec p99_us errors": wrk posting BODY_FILE to
# 127.0.0.1:PORT/PATH with Benchmarks/wrk/post.lua (2 threads, 64 connections unless given; ORGS passes through).
wrk_post() {
    BODY_FILE="$4" wrk -t"${WRK_THREADS:-2}" -c"${5:-64}" -d"$3s" --latency -s Benchmarks/wrk/post.lua "http://127.0.0.1:$1$2" |
        awk '/^RESULT/ { split($2,a,"="); split($4,b,"="); split($5,c,"="); split($6,d,"="); print a[2], b[2], c[2] + d[2] }'
}

# ensure_syslog_ng DIR: syslog-ng with its http module and its configuration library (elasticsearch-http()) unpacked
# into DIR from Debian's packages, beside rsyslog: the two are system loggers Debian will not install together, so
# syslog-ng is unpacked (dpkg -x) rather than installed, its libraries installed as usual. Prints DIR.
ensure_syslog_ng() {
    local dir=$1
    if [ ! -x "$dir/usr/sbin/syslog-ng" ]; then
        ensure_packages libivykis0 libnet1 libjson-c5 libwrap0 libcurl4 libpcre3 libglib2.0-0 >&2
        local downloads
        downloads=$(mktemp -d)
        chmod 777 "$downloads"
        if ! (cd "$downloads" && apt-get download -qq syslog-ng-core syslog-ng-mod-http syslog-ng-scl >/dev/null 2>&1); then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
            (cd "$downloads" && apt-get download -qq syslog-ng-core syslog-ng-mod-http syslog-ng-scl >/dev/null 2>&1)
        fi
        rm -rf "$dir"
        mkdir -p "$dir"
        for package in "$downloads"/*.deb; do dpkg -x "$package" "$dir"; done
        rm -rf "$downloads"
    fi
    echo "$dir"
}

# ensure_otel_python DIR: a virtualenv in DIR with the OpenTelemetry Python SDK and its OTLP/HTTP exporters pinned in
# Tests/otel/requirements.txt (from PyPI; installed again only when the pins change); prints its python.
ensure_otel_python() {
    local dir=$1 requirements=Tests/otel/requirements.txt
    if [ ! -x "$dir/bin/python" ] || ! cmp -s "$requirements" "$dir/requirements.txt"; then
        rm -rf "$dir"
        python3 -m venv "$dir" >&2
        "$dir/bin/pip" install -q --disable-pip-version-check -r "$requirements" >&2
        cp "$requirements" "$dir/requirements.txt"
    fi
    echo "$dir/bin/python"
}
