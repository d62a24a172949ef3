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
  # The target dir is shared with other worktrees: benchmark a private copy of what was just built.
  mkdir -p "$BENCH_WORK/bin"
  cp "$CARGO_TARGET_DIR/release/causeway" "$CARGO_TARGET_DIR/release/examples/scale" "$BENCH_WORK/bin/"
  git -C "$HERE/.." rev-parse --short HEAD > "$BENCH_WORK/bin/REV"
fi
exec python3 "$HERE/harness.py" "$@"
