#!/usr/bin/env bash
# Passes the tests on a fresh Debian machine: installs what is missing (Debian packages, rsyslog among them; syslog-ng
# unpacked into .build/syslog-ng; the OpenTelemetry Python SDK and the Elasticsearch client from PyPI into
# .build/otel-venv), makes a throwaway CA and certificates with openssl, starts on spare ports a
# redis-server, a 6-node Redis Cluster (3 masters, 3 replicas) and PostgreSQL, and beside them their TLS twins: a
# TLS-only redis-server, one that requires client certificates, a TLS-only 6-node cluster and a PostgreSQL that takes
# TLS connections only; runs `swift test` (arguments are passed on), and stops them all whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev libzstd-dev pkg-config postgresql curl python3-venv openssl \
    rsyslog rsyslog-elasticsearch
export OPERYN_TEST_OTEL_PYTHON="${OPERYN_TEST_OTEL_PYTHON:-$(ensure_otel_python "$PWD/.build/otel-venv")}"
export OPERYN_TEST_SYSLOG_NG="${OPERYN_TEST_SYSLOG_NG:-$(ensure_syslog_ng "$PWD/.build/syslog-ng")}"

echo "checking formatting (.swift-format)…"
swift format lint --strict -r Sources Tests Benchmarks Package.swift
bash scripts/check-links.sh

work=$(mktemp -d /tmp/operyn-test.XXXXXX)
chmod 755 "$work"
redis_pids=()
cleanup() {
    for pid in "${redis_pids[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; done
    stop_redis_cluster "$work/cluster"
    stop_redis_cluster "$work/tls-cluster"
    stop_postgres "$work/pg"
    stop_postgres "$work/pg-tls"
    umount "$work/small-disk" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

redis_port=$(spare_port "${OPERYN_TEST_REDIS_PORT:-6390}")
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --appendonly yes --save "" \
    --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
redis_pids+=($!)
wait_for_port "$redis_port" 10
export OPERYN_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

# TLS: the certificates (server.pem names localhost only), a TLS-only Redis and one that requires client certificates.
certs="$work/tls"
bash scripts/make-test-certs.sh "$certs"
export OPERYN_TEST_TLS_DIR="$certs"
tls_options=(--tls-cert-file "$certs/server.pem" --tls-key-file "$certs/server.key" --tls-ca-cert-file "$certs/ca.pem")
for role in tls mtls; do
    port=$(spare_port "$((redis_port + 1))")
    [ "$role" = tls ] && clients=no || clients=yes
    redis-server --port 0 --tls-port "$port" "${tls_options[@]}" --tls-auth-clients "$clients" --bind 127.0.0.1 --dir "$work" \
        --appendonly no --save "" --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis-$role.log" 2>&1 &
    redis_pids+=($!)
    wait_for_port "$port" 10
    [ "$role" = tls ] && export OPERYN_TEST_REDIS_TLS_URL="rediss://localhost:$port" || export OPERYN_TEST_REDIS_MTLS_URL="rediss://localhost:$port"
done

cluster_port=$(spare_cluster_ports "${OPERYN_TEST_REDIS_CLUSTER_PORT:-7100}")
start_redis_cluster "$work/cluster" "$cluster_port"
export OPERYN_TEST_REDIS_CLUSTER_URL="redis+cluster://127.0.0.1:$cluster_port,127.0.0.1:$((cluster_port + 1))"
tls_cluster_port=$(spare_cluster_ports "$((cluster_port + 6))")
start_redis_cluster "$work/tls-cluster" "$tls_cluster_port" "$certs"
# The nodes announce IP addresses: the clients verify the name localhost (OPERYN_REDIS_TLS_SERVER_NAME).
export OPERYN_TEST_REDIS_TLS_CLUSTER_URL="rediss+cluster://127.0.0.1:$tls_cluster_port,127.0.0.1:$((tls_cluster_port + 1))"

pg_port=$(spare_port "${OPERYN_TEST_POSTGRES_PORT:-5440}")
start_postgres "$work/pg" "$pg_port" fsync=off max_connections=200
export OPERYN_TEST_POSTGRES_URL="postgres://operyn@127.0.0.1:$pg_port/postgres"
# A 16 MiB filesystem for the full-disk test, where the machine lets us mount one: the test puts a PostgreSQL
# tablespace on it (SQLite's full disk is its max_page_count, anywhere).
mkdir -p "$work/small-disk"
if mount -t tmpfs -o size=16m,mode=0777 tmpfs "$work/small-disk" 2>/dev/null; then
    export OPERYN_TEST_SMALL_DISK="$work/small-disk"
else
    echo "no small filesystem (mount refused): PostgreSQL's full-disk test is skipped"
fi
pg_tls_port=$(spare_port "$((pg_port + 1))")
start_postgres_tls "$work/pg-tls" "$pg_tls_port" "$certs" fsync=off max_connections=100
# TLS only (hostssl); the host is localhost, the name in the server's certificate.
export OPERYN_TEST_POSTGRES_TLS_URL="postgres://operyn@localhost:$pg_tls_port/postgres"
echo "test postgres: $OPERYN_TEST_POSTGRES_URL"
echo "test redis: $OPERYN_TEST_REDIS_URL; test cluster: $OPERYN_TEST_REDIS_CLUSTER_URL"
echo "over TLS: $OPERYN_TEST_REDIS_TLS_URL, $OPERYN_TEST_REDIS_MTLS_URL (client certificates), $OPERYN_TEST_REDIS_TLS_CLUSTER_URL, $OPERYN_TEST_POSTGRES_TLS_URL"

# The process tests run the built executables: build everything first.
swift build --build-tests --force-resolved-versions
export OPERYN_TEST_BIN_DIR="${OPERYN_TEST_BIN_DIR:-$(swift build --show-bin-path)}"
if [ $# -gt 0 ]; then
    swift test --skip-build "$@"
else
    # The unit, route, live and process tests in parallel; then the end-to-end and fault tests one at a time, since
    # they load the machine (gateways, workers, traffic) and the timing checks of the others must not share it.
    swift test --skip-build --skip EndToEndTests
    swift test --skip-build --no-parallel --filter EndToEndTests
fi
