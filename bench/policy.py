"""Section `policy` of bench/harness.py: what each traffic policy costs.

Cluster a imports the same iperf3 and echo backends of cluster b under one service name per
policy; c is the mirror's target (a sink). Each policy is measured against `none` in the same
run, alternating the order: 64-byte ping-pong p50 through a kept-open connection, new-connection
time to first byte, and single-stream bulk throughput with the CPU both gateways used for it.
"""

import os
import shutil

import probes

# name: (importer-side policy on a, exporter-side policy on b); {svc} is the service.
POLICIES = {
    "none": ("", ""),
    "split": ("{ service: {svc}, split: { b: 1 } }", ""),
    "hash": ("{ service: {svc}, hash: client_ip, split: { b: 1 } }", ""),
    "fault": ("{ service: {svc}, fault: { delay: 1s, delay_percent: 0, abort_percent: 0 } }", ""),
    "mirror": ("{ service: {svc}, mirror: { cluster: c } }", ""),
    "limits": ("", "{ service: {svc}, limits: { each_source: { connections_per_second: 1000000, "
                   "max_connections: 1000000, bytes_per_second: 100000000000 } } }"),
}
IPERF, ECHO, SINK = 5401, 5403, 5405


def _policies(lines):
    lines = [x for x in lines if x]
    return "policies:\n" + "".join(f"  - {x}\n" for x in lines) if lines else ""


def _clusters(h, root):
    """a (client side), b (serves every policy's services), c (the mirror's sink)."""
    svc = {k: (f"bench/p-{k}-iperf", 16100 + 2 * i, f"bench/p-{k}-echo", 16101 + 2 * i)
           for i, k in enumerate(POLICIES)}
    b_exports = [h.export(s, p, be) for s, p, s2, p2 in svc.values()
                 for (s, p, be) in ((s, p, IPERF), (s2, p2, ECHO))]
    c_exports = [h.export(s, p, SINK) for s, p, s2, p2 in svc.values() for (s, p) in ((s, p), (s2, p2))]
    # Each Cluster writes its config; the second construction of b and c lists their peers.
    a0 = h.Cluster("a", 0, root, "127.77.1.0/24")
    b = h.Cluster("b", 1, root, "127.77.2.0/24", exports=b_exports, peers=[a0])
    c = h.Cluster("c", 2, root, "127.77.3.0/24", exports=c_exports, peers=[a0])
    a = h.Cluster("a", 0, root, "127.77.1.0/24", peers=[b, c])
    # a places b in its own region, so a's connections go to b; c (exporting the same names,
    # for the mirror) is only ever a failover.
    with open(a.cfg) as f:
        text = f.read().replace("- { name: b, ", "- { name: b, region: region-a, ")
    with open(a.cfg, "w") as f:
        f.write(text)
    for cl, side in ((a, 0), (b, 1)):
        lines = [POLICIES[k][side].replace("{svc}", name)
                 for k, names in svc.items() for name in (names[0], names[2])]
        with open(cl.cfg, "a") as f:
            f.write(_policies(lines))
    return a, b, c, svc


def section_policy(args, results, h):
    root = os.path.join(h.WORK, "policy")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    h.PROCS.start("iperf3-policy", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(IPERF)])
    probe = os.path.join(h.HERE, "probes.py")
    h.PROCS.start("echo-policy", [h.sys.executable, probe, "echo", str(ECHO), "3600"])
    h.PROCS.start("sink-policy", [h.sys.executable, probe, "sink", str(SINK), "3600"])
    for p in (IPERF, ECHO, SINK):
        h.wait_until(f"backend {p}", lambda p=p: h.tcp_open(p))
    a, b, c, svc = _clusters(h, root)
    for cl in (b, c, a):
        cl.start()
    addrs = {k: ((a.vip(s1), p1), (a.vip(s2), p2)) for k, (s1, p1, s2, p2) in svc.items()}
    for k, (_, echo) in addrs.items():
        probes.pingpong(*echo, 10, 64)
    pids = [a.pid, b.pid]
    res = {"started": h.time.strftime("%Y-%m-%d %H:%M:%S UTC", h.time.gmtime()),
           "causeway": h.sh(f"cat {h.BIN}/REV"), "reps": args.reps, "secs": args.secs,
           "load_start": h.loadavg(), "runs": []}
    order = list(POLICIES)
    for rep in range(args.reps):
        shift = rep % len(order)
        for k in order[shift:] + order[:shift]:
            iperf, echo = addrs[k]
            r = {"rep": rep, "policy": k, "bulk": h.m_bulk(*iperf, args.secs, pids),
                 "rr": probes.pingpong(*echo, 5000, 64),
                 "connect": probes.connect(*echo, 200)["first_byte"]}
            h.log(f"policy rep {rep + 1}/{args.reps}: {k}: bulk {r['bulk']['gbps']:.2f} Gbit/s, "
                  f"rr p50 {r['rr']['p50']:.0f} us, connect p50 {r['connect']['p50']:.0f} us")
            res["runs"].append(r)
    res["load_end"] = h.loadavg()
    results["policy"] = res


def _med(h, runs, k, f):
    return h.med([f(r) for r in runs if r["policy"] == k])


def report(results, h):
    pol = results.get("policy")
    L = ["## Traffic policy: the cost of each policy, loopback", ""]
    if not pol:
        return L + ["Not measured in this run.", ""]
    L += [f"Measured {pol['started']}, causeway {pol['causeway']}, {pol['reps']} repetitions, "
          f"load {pol['load_start']} -> {pol['load_end']}. Client -> cluster a -> cluster b, one",
          "service per policy on the same backends; `none` has no policy. `split` and `hash` choose",
          "among b alone (a places b in its own region; the decision's cost, not a spread); `fault` evaluates a fault",
          "that never fires (0 %); `mirror` copies every connection to cluster c (a sink);",
          "`limits` puts a token bucket, a connection count and a shaper (at 100 GB/s, never waiting)",
          "on b's side. Bulk: one iperf3 stream for", f"{pol['secs']} s; CPU: both gateways' user+system seconds per GiB.", "",
          "| policy | bulk Gbit/s | vs none | CPU s/GiB | 64 B ping-pong p50 us | added p50 us | new connection p50 us |",
          "|---|---|---|---|---|---|---|"]
    runs = pol["runs"]
    base_bulk = _med(h, runs, "none", lambda r: r["bulk"]["gbps"])
    base_rr = _med(h, runs, "none", lambda r: r["rr"]["p50"])
    for k in POLICIES:
        bulk = _med(h, runs, k, lambda r: r["bulk"]["gbps"])
        cpu = _med(h, runs, k, lambda r: r["bulk"].get("cpu_s_per_gib"))
        rr = _med(h, runs, k, lambda r: r["rr"]["p50"])
        conn = _med(h, runs, k, lambda r: r["connect"]["p50"])
        vs = f"{bulk / base_bulk:.2f}x" if bulk and base_bulk else "-"
        added = f"{rr - base_rr:+.0f}" if rr is not None and base_rr is not None else "-"
        L.append(f"| {k} | {bulk:.2f} | {vs} | {cpu:.2f} | {rr:.0f} | {added} | {conn:.0f} |")
    return L + [""]
