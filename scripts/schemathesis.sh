#!/usr/bin/env bash
# schemathesis (PyPI) against /openapi.json of a live operyn-gateway on its own Redis: with the right key, every
# generated request must get an answer the document allows and never a 5xx; without a key, every operation must be
# refused (401). Uses OPERYN_TEST_BIN_DIR (release or debug build) or builds a debug gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
# The gateways here serve HTTP only; several run side by side, and 4317 is one port.
export OPERYN_GRPC_PORT=0
ensure_packages redis-server python3-venv curl

with_scratch schemathesis

if [ ! -x .venv-schemathesis/bin/st ]; then
    python3 -m venv .venv-schemathesis
    .venv-schemathesis/bin/pip install -q 'schemathesis==4.32.5'
fi
bin=${OPERYN_TEST_BIN_DIR:-}
if [ -z "$bin" ]; then swift build --product operyn-gateway >/dev/null; bin=$(swift build --show-bin-path); fi

redis_port=$(spare_port 6480)
redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no --daemonize no --loglevel warning >"$work/redis.log" 2>&1 &
pids+=($!)
wait_for_port "$redis_port" 10
gateway_port=$(spare_port 3480)
OPERYN_REDIS_URL="redis://127.0.0.1:$redis_port" OPERYN_PORT="$gateway_port" OPERYN_API_KEY=schemathesis-key \
    OPERYN_AUTH_FAILURE_LIMIT=0 OPERYN_LOG_LEVEL=error OPERYN_KEY_PREFIX=st "$bin/operyn-gateway" >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_for_port "$gateway_port" 30
url="http://127.0.0.1:$gateway_port"
st=.venv-schemathesis/bin/st
examples=${SCHEMATHESIS_EXAMPLES:-200}

status=0
echo "schemathesis: with the key ($examples examples per operation)"
# The bulk API's body is NDJSON (application/x-ndjson), which a JSON Schema cannot describe nor schemathesis make:
# it is tested with the real shippers and the hostile corpus instead (docs: reliability).
"$st" --config-file scripts/schemathesis.toml run "$url/openapi.json" --url "$url" -H "x-api-key: schemathesis-key" --checks all \
    --exclude-path-regex '^/v1/|_bulk$' --max-examples "$examples" --no-color || status=1
# The OTLP routes answer a body whose records break the rules 200, with the refused records counted in
# partial_success (OTLP/HTTP's answer), and the JSON mapping reads null and unknown fields leniently: a body outside
# the schema can rightly be accepted, so negative_data_rejection does not apply. Schema-valid bodies must still be
# accepted, and nothing may be a 5xx.
echo "schemathesis: the OTLP routes, with the key"
"$st" --config-file scripts/schemathesis.toml run "$url/openapi.json" --url "$url" -H "x-api-key: schemathesis-key" --checks all \
    --exclude-checks negative_data_rejection --include-path-regex '^/v1/' --max-examples "$examples" --no-color || status=1
echo "schemathesis: without a key, every operation refused"
"$st" run "$url/openapi.json" --url "$url" --include-path-regex '^/(events|v1)/' --checks not_a_server_error,status_code_conformance,response_schema_conformance \
    --max-examples 20 --no-color || status=1
for path in events/logs events/logs/batch events/metrics events/deployments v1/logs v1/metrics; do
    code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$url/$path" -H 'content-type: application/json' -d '{}')
    [ "$code" = 401 ] || { echo "schemathesis: POST /$path without a key answered $code, not 401"; status=1; }
done
grep -c '"statusCode":5' "$work/gateway.log" >/dev/null 2>&1 && { echo "schemathesis: the gateway logged a 5xx"; status=1; }
echo "schemathesis: $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
