#!/usr/bin/env bash
# Passes the tests on a fresh Debian machine: installs what is missing (Debian packages, and the OpenTelemetry Python
# SDK from PyPI into .build/otel-venv), starts a throwaway redis-server, a 6-node Redis Cluster (3 masters, 3 replicas)
# and PostgreSQL on spare ports, runs `swift test` (arguments are passed on), and stops them whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev pkg-config postgresql curl python3-venv
export OPERYN_TEST_OTEL_PYTHON="${OPERYN_TEST_OTEL_PYTHON:-$(ensure_otel_python "$PWD/.build/otel-venv")}"

echo "checking formatting (.swift-format)…"
swift format lint --strict -r Sources Tests Benchmarks Package.swift
bash scripts/check-links.sh

work=$(mktemp -d /tmp/operyn-test.XXXXXX)
chmod 755 "$work"
redis_pid=""
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    stop_redis_cluster "$work/cluster"
    stop_postgres "$work/pg"
    rm -rf "$work"
}
trap cleanup EXIT

redis_port=$(spare_port "${OPERYN_TEST_REDIS_PORT:-6390}")
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --appendonly yes --save "" \
    --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
redis_pid=$!
wait_for_port "$redis_port" 10
export OPERYN_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"

cluster_port=$(spare_cluster_ports "${OPERYN_TEST_REDIS_CLUSTER_PORT:-7100}")
start_redis_cluster "$work/cluster" "$cluster_port"
export OPERYN_TEST_REDIS_CLUSTER_URL="redis+cluster://127.0.0.1:$cluster_port,127.0.0.1:$((cluster_port + 1))"

pg_port=$(spare_port "${OPERYN_TEST_POSTGRES_PORT:-5440}")
start_postgres "$work/pg" "$pg_port" fsync=off max_connections=200
export OPERYN_TEST_POSTGRES_URL="postgres://operyn@127.0.0.1:$pg_port/postgres"
echo "test postgres: $OPERYN_TEST_POSTGRES_URL"
echo "test redis: $OPERYN_TEST_REDIS_URL; test cluster: $OPERYN_TEST_REDIS_CLUSTER_URL"

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
