#!/usr/bin/env bash
# The whole fault, load and hostile-input suite (docs: reliability): every fault test with its ledger on SQLite and on
# PostgreSQL, the ten-minute soak (OPERYN_SOAK_SECONDS, default 600) on release builds, the hostile-input corpus, and
# schemathesis against a live gateway's /openapi.json. Prints each ledger and the figures; the output is also kept in
# fault-suite-results.txt. Runs on a fresh Debian machine like scripts/test.sh (which it uses).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib.sh
results=fault-suite-results.txt
: >"$results"

build_release
export OPERYN_TEST_BIN_DIR="$bin"
export OPERYN_FAULT_SUITE=full

status=0
# The ledger tests once per store: the fast fault tests run on both engines themselves.
for sink in sqlite postgres; do
    echo "== fault suite, store: $sink ==" | tee -a "$results"
    filter='FaultSuiteTests|SoakTests'
    [ "$sink" = sqlite ] && filter='FaultTests|FaultSuiteTests|SoakTests|HostileInputTests|PoisonLedgerTests|ClusterFaultTests|RateLimitTests|OTLPExportTests'
    OPERYN_FAULT_SINK=$sink bash scripts/test.sh --no-parallel --filter "$filter" 2>&1 | tee -a "$results" || status=1
done
bash scripts/schemathesis.sh 2>&1 | tee -a "$results" || status=1

echo
echo "== summary =="
grep -E '^\[|ledger:|schemathesis:|Test run' "$results" | grep -vE '^\[[0-9]' || true
exit $status
