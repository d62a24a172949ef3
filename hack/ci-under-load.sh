#!/usr/bin/env bash
# Runs CI (`.ci/run`) on fresh clones of HEAD, N times in a row, while
# stress-ng keeps every core busy: a test that passes only on an idle machine
# fails here first.
#
#   hack/ci-under-load.sh [RUNS] [--warm] [--no-fuzz]
#
# RUNS defaults to 3. Each run clones HEAD into a new directory. Without
# --warm every run also builds in a new, empty target dir (a cold CI run);
# with --warm the runs share one target dir (CI_LOAD_TARGET, if set), so only
# the first one is cold. --no-fuzz skips .ci/run's cargo-fuzz slice: its
# build runs at nice 19 and, against stress-ng, spends its whole 15 minutes
# before it skips itself; it has no timing to flake on.
# Prints one line per run and a summary; exits non-zero if any run failed.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
runs="${1:-3}"
warm=""
for a in "${@:2}"; do
    case "$a" in
    --warm) warm=--warm ;;
    --no-fuzz) export CAUSEWAY_CI_FUZZ=0 ;;
    *) echo "usage: $0 [RUNS] [--warm] [--no-fuzz]" >&2; exit 2 ;;
    esac
done
work="$(mktemp -d /tmp/ci-under-load.XXXXXX)"
command -v stress-ng >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends stress-ng
}
stress-ng --cpu "$(nproc)" --cpu-method matrixprod --quiet &
stress=$!
trap 'kill "$stress" 2>/dev/null || true' EXIT
echo "load: stress-ng --cpu $(nproc) (pid $stress); logs in $work"
failed=0
for i in $(seq 1 "$runs"); do
    clone="$work/clone-$i"
    git clone -q --no-hardlinks "$repo" "$clone"
    target="${CI_LOAD_TARGET:-$work/target}"
    [ "$warm" = "--warm" ] || target="$work/target-$i"
    t0=$(date +%s)
    if (cd "$clone" && CI=true CARGO_TARGET_DIR="$target" bash .ci/run) >"$work/run-$i.log" 2>&1; then
        result=green
    else
        result=RED
        failed=$((failed + 1))
    fi
    summary="$(grep '^suite:' "$work/run-$i.log" || echo 'suite: no summary')"
    echo "run $i: $result in $(($(date +%s) - t0)) s, $summary ($(git -C "$clone" rev-parse --short HEAD))"
    [ "$warm" = "--warm" ] || rm -rf "$target"
done
echo "under load: $((runs - failed)) of $runs runs green"
[ "$failed" -eq 0 ]
