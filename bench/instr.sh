#!/bin/bash
# Instructions per GiB through two causeway gateways, and through the Envoy mTLS pair: a CPU-per-byte
# figure that stays put on a noisy machine (CPU seconds per GiB do not).
#
#   bench/instr.sh [--bytes 64M] [--conns 100] [--workers N] [--no-envoy] [--tool auto|callgrind|perf] BIN [BIN2]
#
# BIN (and BIN2, to compare before/after side by side in one run) is a causeway binary, e.g.
# $CARGO_TARGET_DIR/release/causeway. Nothing is built here.
#
# Topology: bench/harness.py's loopback dataplane configs (two `causeway run` clusters, default
# gateway settings; cluster b exports a sink, cluster a imports it) on ports of their own
# (25000-25153, VIPs 127.79.1-2.x, sink 5291; Envoy 15091/15491, admin 9911/9912), so it does not
# collide with a bench/run.sh section. The load is bench/probes.py `blast`: N connections to the
# ClusterSetIP, all connected before any byte, send --bytes in all, half-close, and the sink's byte
# count is checked (a short count fails the run). Data-path settings are the build's defaults;
# timers that valgrind's slowness would trip (stream setup timeouts, keep-alive, liveness and idle
# timeout, federation leases; Envoy's upstream connect timeout) are widened, each only where the
# build's `causeway config check` accepts it. None of them is on the per-byte path.
# gateway.workers is read from the effective config (--workers N sets it where the build has it).
#
# Counter: `perf stat -e instructions` when it counts here (user + kernel instructions); it does not
# on this machine (`perf stat -e instructions true` says <not supported>), so by default each gateway
# runs under `valgrind --tool=callgrind` and the figure is callgrind's Ir (user-space instructions;
# valgrind advertises its own CPUID, so crypto takes the AES-NI/AVX2 path even on an AVX-512 host).
# Valgrind serialises a process's threads (--fair-sched=try): the count is the work done, but
# threads interleave differently than natively (batching may differ), and spinning on a contended
# lock counts too; compare builds with the same gateway.workers. Run time here (estimated from smoke runs at 2-4 MiB): about 2-3 minutes
# per contender at 64 MiB (Envoy's start-up under valgrind alone takes ~1.5 min), so BIN BIN2 and the
# Envoy pair about 8 minutes. Timeouts are generous (--timeout, 1800 s per start-up and per phase).
#
# Start-up is not amortised but cut out, with a steady-state window: after the gateways are ready
# and a warm-up (1 MiB on one connection, N zero-byte connections: QUIC handshake done, streams and
# allocator warm) every process is dumped with `callgrind_control --dump` (the start-up figure), and
# again at the end of each phase, so each dump holds exactly one phase:
#   idle     --idle-s seconds with no traffic          -> background rate (keep-alives, heartbeats)
#   zero_1   1 connection, 0 bytes                     -> connection setup and teardown
#   bulk_1   1 connection, --bytes
#   zero_n   N connections, 0 bytes
#   bulk_n   N connections, --bytes in all
# net instructions per GiB = (Ir(bulk) - Ir(zero) - idle rate x (seconds(bulk) - seconds(zero))) / GiB,
# per gateway process and summed; the gross figure (the whole bulk window) is printed beside it.
# The Envoy pair is measured the same way (both Envoys under callgrind, --concurrency 2).
# Per-phase profiles stay in $BENCH_WORK/instr/*.callgrind/ (callgrind_annotate FILE).
#
# Results: a table on stdout and $BENCH_WORK/instr.json. `bench/run.sh --only instr` runs the same
# measurement on the harness's build and puts it in the report.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
export BENCH_WORK=${BENCH_WORK:-$HERE/.work}
if ! command -v valgrind >/dev/null || [ ! -x "$BENCH_WORK/venv/bin/envoy" ]; then
  "$HERE/setup.sh"
fi
exec python3 "$HERE/instr.py" "$@"
