#!/usr/bin/env python3
"""Where the gateways' CPU goes: `perf record` (cpu-clock, call graphs) of both causeway
processes while a load runs through them on loopback, then `perf report` by shared object and
symbol. Profile before optimising; quote the top of this in the note.

    bench/profile.py BIN [--load bulk|many] [--secs 8] [--gateway-extra YAML] [--out DIR]

bulk: one iperf3 connection; many: 1,000 connections (8 iperf3 clients x -P 125). The topology is
bench/harness.py's loopback dataplane (cluster b exports iperf3 servers, cluster a imports them),
on the harness's ports: do not run it beside a bench/run.sh section. --gateway-extra adds lines to
both gateways' config (e.g. "  transport: { ack_every: 10 }") to profile a variant.
Prints the load's throughput and the gateways' CPU seconds per GiB over the same run (a quick
A/B; perf's sampling costs a few per cent), writes DIR/report-LOAD.txt (default
$BENCH_WORK/profile) and prints its first lines. --no-perf: figures only.
"""
import argparse
import json
import os
import subprocess
import sys
import threading

import harness as h

MANY_PORTS = [5211 + i for i in range(8)]


def topology(root, extra):
    for p in [5201] + MANY_PORTS:
        h.PROCS.start(f"iperf3-{p}", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(p)])
        h.wait_until(f"backend {p}", lambda p=p: h.tcp_open(p))
    services = [("iperf", 5201)] + [(f"many{i}", p) for i, p in enumerate(MANY_PORTS)]
    exports = [h.export(f"bench/{s}", be, be) for s, be in services]
    b0 = h.Cluster("b", 1, root, "127.77.2.0/24", exports=exports, gateway_extra=extra)
    a = h.Cluster("a", 0, root, "127.77.1.0/24", peers=[b0], gateway_extra=extra)
    b = h.Cluster("b", 1, root, "127.77.2.0/24", exports=exports, peers=[a], gateway_extra=extra)
    b.start()
    a.start()
    return a, b, {s: a.vip(f"bench/{s}") for s, _ in services}


def load(kind, vips, secs):
    if kind == "bulk":
        return [["iperf3", "-c", vips["iperf"], "-p", "5201", "-t", str(secs), "-J"]]
    return [["iperf3", "-c", vips[f"many{i}"], "-p", str(p), "-t", str(secs), "-P", "125", "-J"]
            for i, p in enumerate(MANY_PORTS)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--load", choices=["bulk", "many"], default="bulk")
    ap.add_argument("--secs", type=int, default=8)
    ap.add_argument("--gateway-extra", default="")
    ap.add_argument("--out", default=os.path.join(h.WORK, "profile"))
    ap.add_argument("--no-perf", action="store_true")
    args = ap.parse_args()
    h.CAUSEWAY = os.path.abspath(args.bin)
    root = os.path.join(h.WORK, "profile-run")
    os.makedirs(args.out, exist_ok=True)
    extra = args.gateway_extra + ("\n" if args.gateway_extra and not args.gateway_extra.endswith("\n") else "")
    try:
        a, b, vips = topology(root, extra)
        pids = [a.pid, b.pid]
        c0 = h.cpu_of(pids)
        clients = [subprocess.Popen(c, stdout=subprocess.PIPE, text=True)
                   for c in load(args.load, vips, args.secs)]
        data = os.path.join(args.out, f"perf-{args.load}.data")
        if not args.no_perf:
            # Skip the first second (ramp-up) and stop before the clients do.
            threading.Event().wait(1)
            subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-g", "-o", data,
                            "-p", f"{a.pid},{b.pid}", "--", "sleep", str(max(1, args.secs - 3))],
                           check=True)
        moved = 0
        for c in clients:
            out, _ = c.communicate(timeout=args.secs + 60)
            moved += json.loads(out)["end"]["sum_received"]["bytes"]
        cpu = h.cpu_of(pids) - c0
        gib = moved / h.GIB
        show = ("gateway_peer_mtu", "gateway_udp_", "gateway_peer_datagrams_sent", "gateway_peer_send_calls")
        text = subprocess.run(["curl", "-sS", "-m", "10", f"http://127.0.0.1:{a.admin}/metrics"], capture_output=True, text=True).stdout
        keep = ("mtu", "lost_packets", "send_calls", "datagrams_sent", "congestion_window")
        print("\n".join(l for l in text.splitlines() if not l.startswith("#") and any(k in l for k in keep)))
        for line in text.splitlines():
            if line.startswith(show):
                print("  a:", line)
        print(f"{args.load}: {gib * 8 * 1.073741824 / args.secs:.2f} Gbit/s, "
              f"{cpu / gib:.2f} CPU s/GiB (both gateways), {h.CAUSEWAY}")
        if args.no_perf:
            return
        report = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                                 "--sort", "dso,symbol", "-g", "none", "--percent-limit", "0.5"],
                                capture_output=True, text=True, check=True).stdout
        path = os.path.join(args.out, f"report-{args.load}.txt")
        with open(path, "w") as f:
            f.write(report)
        lines = [l for l in report.splitlines() if l and not l.startswith("#")]
        print("\n".join(lines[:40]))
        print(f"(full report: {path})")
    finally:
        h.PROCS.stop_all()


if __name__ == "__main__":
    sys.exit(main())
