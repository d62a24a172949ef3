#!/usr/bin/env python3
"""Manual run behind bench/analysis.md: 1,000 concurrent connections over the emulated WAN (25 ms
each way, 0 % and 1 % loss; bench/wanem.py): 8 `iperf3 -P 125` clients in cwb-fa to 8 iperf3
servers in cwb-fb, through direct TCP, causeway (fa -> fb) and the Envoy pair, once each per loss
(alternating). Root; the netns section's topology (cwb-*). Writes $BENCH_WORK/netns_many.json.

    cd bench && BENCH_WORK=$PWD/.work python3 netns_many.py
    cd bench && BENCH_WORK=$PWD/.work CW_ONLY=causeway \
        CW_TRANSPORT="{ congestion: bbr, stream_receive_window: 8388608 }" python3 netns_many.py
"""
import json
import os
import time

import harness as h

SECS = 8
out = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_start": h.loadavg(),
       "secs": SECS}
t = h.WanTopo(["fa", "fb", "fc"])
try:
    t.create()
    fb = t.ns("fb")
    ports = [5211 + i for i in range(8)]
    for p in ports:
        h.PROCS.start(f"ns-iperf3-{p}", h.in_ns_argv(fb, ["iperf3", "-s", "-p", str(p)]))
    for p in ports:
        def up(p=p):
            with h.in_ns(fb):
                return h.tcp_open(p)
        h.wait_until(f"iperf3 {p}", up)
    services = [(f"many{i}", 15011 + i, p) for i, p in enumerate(ports)]
    t.start_emulator(25, 0.0)
    root = os.path.join(h.WORK, "netns_many")
    transport = os.environ.get("CW_TRANSPORT", "")  # e.g. "{ congestion: bbr }": causeway only
    out["causeway_transport"] = transport or "defaults"
    cl = h.three_clusters(root, topo=t, b_exports=[h.export(f"bench/{s}", be, be) for s, _, be in services],
                          transport=transport)
    vips = {s: cl["fa"].vip(f"bench/{s}") for s, _, _ in services}
    h.start_envoy_pair(os.path.join(root, "envoy"), services, ns_a=t.ns("fa"), ns_b=fb, b_host=t.ip("fb"))
    contenders = {
        "direct": ([(t.ip("fb"), be) for _, _, be in services], []),
        "causeway": ([(vips[s], be) for s, _, be in services], [cl["fa"].pid, cl["fb"].pid]),
        "envoy": ([("127.0.0.1", ap) for _, ap, _ in services], [h.PROCS.pid("envoy-a"), h.PROCS.pid("envoy-b")]),
    }
    admins = {"causeway": (cl["fa"].admin, cl["fb"].admin)}
    only = os.environ.get("CW_ONLY")  # e.g. "causeway"
    if only:
        contenders = {k: v for k, v in contenders.items() if k in only.split(",")}
    for loss in (0.0, 1.0):
        t.start_emulator(25, loss / 100)  # wanem takes a fraction
        for k, (targets, pids) in contenders.items():
            with h.in_ns(t.ns("fa")):
                r = h.guarded(k, lambda: h.m_many(targets, SECS, pids, admins=admins.get(k, ())))
            out[f"{k}, loss {loss:g} %"] = r
            print(time.strftime("%H:%M:%S"), k, loss, json.dumps(r)[:300], flush=True)
            time.sleep(2)
    out["emulator"] = t.emulator_stats()
    out["load_end"] = h.loadavg()
    name = "netns_many.json" if not transport else "netns_many_tuned.json"
    with open(os.path.join(h.WORK, name), "w") as fh:
        json.dump(out, fh, indent=1)
finally:
    h.PROCS.stop_all()
    t.destroy()
