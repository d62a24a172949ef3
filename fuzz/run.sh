#!/usr/bin/env bash
# Runs every cargo-fuzz target (needs a nightly toolchain and cargo-fuzz).
#   fuzz/run.sh                 10,000,000 executions per target (the long run)
#   fuzz/run.sh RUNS            RUNS executions per target
#   fuzz/run.sh --ci [SECONDS]  SECONDS (default 5) per target, for CI; the build
#                               is bounded (15 min), and a build cut short skips
#                               the slice instead of failing it
# Prints, per target, the executions libFuzzer reports and whether it crashed;
# exits non-zero on any crash. New inputs go to fuzz/corpus/<target>/ (minimise
# them with `cargo +nightly fuzz cmin <target>` before committing).
set -euo pipefail
cd "$(dirname "$0")"
targets=(stream_header peer_view_apply dns_fast_path spiffe_san state_json service_export)
if [ "${1:-}" = "--ci" ]; then
    limit=(-max_total_time="${2:-5}")
    build=0
    timeout 900 nice -n 19 cargo +nightly fuzz build -O || build=$?
    if [ "$build" = 124 ]; then
        echo "fuzz: the build did not finish within 15 min; slice skipped"
        exit 0
    elif [ "$build" != 0 ]; then
        echo "error: the fuzz crate does not build" >&2
        exit 1
    fi
else
    limit=(-runs="${1:-10000000}")
fi
# A long run is background work: keep it off the builders' cores.
nice_cmd=(nice -n 19)
logs="${FUZZ_LOGS:-$(mktemp -d)}"
failed=0
printf '%-16s %14s %8s\n' target executions result
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if "${nice_cmd[@]}" cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
        "${limit[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$logs/$t.log" 2>&1; then
        result=ok
    else
        result=CRASH
        failed=1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
    printf '%-16s %14s %8s\n' "$t" "${runs:-?}" "$result"
done
echo "logs: $logs"
exit "$failed"
