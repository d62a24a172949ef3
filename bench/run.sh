#!/bin/bash
# causeway benchmark harness: installs its tools, builds release binaries, runs the comparisons and
# writes docs/benchmarks.md. Loopback only; every process it starts is stopped by PID.
#   bench/run.sh [--reps N] [--only dataplane,dns,failover,catalog,scale] [--report-only]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export BENCH_WORK=${BENCH_WORK:-$HERE/.work}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/../target}
if [[ " $* " != *" --report-only "* ]]; then
  "$HERE/setup.sh"
  (cd "$HERE/.." && cargo build --release -q --bin causeway -p causeway \
     && cargo build --release -q -p causeway-federation --example scale)
fi
exec python3 "$HERE/harness.py" "$@"
