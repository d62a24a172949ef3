#!/usr/bin/env python3
"""Manual check behind bench/analysis.md (WAN bulk): causeway bulk fa -> fb over bench/wanem.py
(25 ms each way) with gateway.transport variants (defaults; 8 MiB stream window; BBR; both), at 0 %
and 1 % loss; one 3 s warm-up, then 3 x 8 s iperf3 each. Root; uses the netns section's topology
(cwb-*). Results also go to $BENCH_WORK/netns_transport.json.

    cd bench && BENCH_WORK=$PWD/.work python3 netns_transport.py
"""
import json
import os
import shutil
import time

import harness as h

VARIANTS = {
    "defaults (cubic, 2 MiB stream window)": "",
    "stream_receive_window 8 MiB": "  transport: { stream_receive_window: 8388608 }\n",
    "congestion bbr": "  transport: { congestion: bbr }\n",
    "bbr + 8 MiB stream window": "  transport: { congestion: bbr, stream_receive_window: 8388608 }\n",
}
out = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_start": h.loadavg()}


def variant(name, extra, losses):
    """A fresh topology per variant, so one variant's failure cannot spoil the next."""
    t = h.WanTopo(["fa", "fb", "fc"])
    try:
        t.create()
        h.PROCS.start("ns-iperf3-5201", h.in_ns_argv(t.ns("fb"), ["iperf3", "-s", "-p", "5201"]))
        t.start_emulator(25, 0.0)
        root = os.path.join(h.WORK, "transport", str(abs(hash(name))))
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        kw = lambda n: dict(ns=t.ns(n), host=t.ip(n))
        b0 = h.Cluster("fb", 11, root, "127.77.21.0/24", **kw("fb"))
        a = h.Cluster("fa", 10, root, "127.77.20.0/24", peers=[b0], gateway_extra=extra, **kw("fa"))
        b = h.Cluster("fb", 11, root, "127.77.21.0/24", peers=[a], gateway_extra=extra,
                      exports=[h.export("bench/iperf", 5201, 5201)], **kw("fb"))
        b.start()
        a.start()
        vip = a.vip("bench/iperf")
        for loss in losses:
            t.start_emulator(25, loss / 100)  # wanem takes a fraction
            xs = []
            with h.in_ns(t.ns("fa")):
                h.guarded("warm-up", lambda: h.iperf_json(vip, 5201, 3))
            for _ in range(3):
                time.sleep(1)
                with h.in_ns(t.ns("fa")):
                    xs.append(h.guarded("bulk", lambda: {"mbit": h.iperf_json(vip, 5201, 8)[0] / 1e6}).get("mbit"))
            out[f"{name}, loss {loss:g} %"] = xs
            print(time.strftime("%H:%M:%S"), name, loss, xs, flush=True)
    finally:
        h.PROCS.stop_all()
        t.destroy()


for name, extra in VARIANTS.items():
    h.guarded(name, lambda: variant(name, extra, (0.0, 1.0)))
out["load_end"] = h.loadavg()
with open(os.path.join(h.WORK, "netns_transport.json"), "w") as fh:
    json.dump(out, fh, indent=1)
