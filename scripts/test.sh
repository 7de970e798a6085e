#!/usr/bin/env bash
# Passes the tests on a fresh Debian machine: installs what is missing, starts a throwaway
# redis-server on a spare port, runs `swift test` (arguments are passed on), and stops it whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh

ensure_packages redis-server redis-tools libhiredis-dev libsqlite3-dev pkg-config

echo "checking formatting (.swift-format)…"
swift format lint --strict -r Sources Tests Benchmarks Package.swift

work=$(mktemp -d /tmp/operyn-test.XXXXXX)
redis_pid=""
cleanup() {
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

redis_port=$(spare_port "${OPERYN_TEST_REDIS_PORT:-6390}")
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --appendonly yes --save "" \
    --maxmemory-policy noeviction --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
redis_pid=$!
wait_for_port "$redis_port" 10
export OPERYN_TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
export OPERYN_TEST_BIN_DIR="$(swift build --show-bin-path)"
echo "test redis: $OPERYN_TEST_REDIS_URL"

swift test "$@"
