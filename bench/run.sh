#!/bin/bash
# causeway benchmark harness: installs its tools, builds release binaries, runs the comparisons and
# writes docs/benchmarks.md. Loopback, plus network namespaces (cwb-*) behind a userspace WAN
# emulator (section netns, root only); every process it starts is stopped by PID.
#   bench/run.sh [--reps N] [--only dataplane,instr,dns,failover,catalog,scale,fedproc,wan,netns,policy,udp]
#                [--loss 0,0.1,1,0:5] [--report-only]
# Instructions per GiB on their own, before/after: bench/instr.sh [--bytes N] [--conns N] BIN [BIN2].
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export BENCH_WORK=${BENCH_WORK:-$HERE/.work}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HERE/../target}
if [[ " $* " != *" --report-only "* ]]; then
  "$HERE/setup.sh"
  (cd "$HERE/.." && cargo build --release -q --bin causeway -p causeway)
  # The target dir is shared with other worktrees: benchmark a private copy of what was just built.
  mkdir -p "$BENCH_WORK/bin"
  cp "$CARGO_TARGET_DIR/release/causeway" "$BENCH_WORK/bin/"
  # The scale example only when the scale section runs (all sections, or --only naming it).
  if [[ " $* " != *" --only "* ]] || [[ "$*" == *scale* ]]; then
    (cd "$HERE/.." && cargo build --release -q -p causeway-federation --example scale)
    cp "$CARGO_TARGET_DIR/release/examples/scale" "$BENCH_WORK/bin/"
  fi
  git -C "$HERE/.." rev-parse --short HEAD > "$BENCH_WORK/bin/REV"
fi
exec python3 "$HERE/harness.py" "$@"
