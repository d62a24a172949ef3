#!/usr/bin/env python3
"""Manual check behind bench/analysis.md (WAN bulk): causeway bulk fa -> fb over bench/wanem.py
(25 ms each way, no loss) with the default stream_receive_window and with 8 MiB on both gateways;
one 3 s warm-up, then 3 x 8 s iperf3 each. Root; uses the netns section's topology (cwb-*).

    cd bench && BENCH_WORK=$PWD/.work python3 netns_window.py
"""
import harness as h, time, os, shutil, json, sys
t = h.WanTopo(["fa", "fb", "fc"])
out = {}
try:
    t.create()
    fb = t.ns("fb")
    h.PROCS.start("ns-iperf3-5201", h.in_ns_argv(fb, ["iperf3", "-s", "-p", "5201"]))
    t.start_emulator(25, 0.0)
    for win in (None, 8388608):
        root = os.path.join(h.WORK, "window", str(win))
        shutil.rmtree(root, ignore_errors=True); os.makedirs(root)
        ex = f"  transport: {{ stream_receive_window: {win} }}\n" if win else ""
        kw = lambda n: dict(ns=t.ns(n), host=t.ip(n))
        b0 = h.Cluster("fb", 11, root, "127.77.21.0/24", **kw("fb"))
        a = h.Cluster("fa", 10, root, "127.77.20.0/24", peers=[b0], gateway_extra=ex, **kw("fa"))
        b = h.Cluster("fb", 11, root, "127.77.21.0/24", peers=[a], gateway_extra=ex,
                      exports=[h.export("bench/iperf", 5201, 5201)], **kw("fb"))
        b.start(); a.start()
        vip = a.vip("bench/iperf")
        for loss in (0.0,):
            t.start_emulator(25, loss)
            xs = []
            with h.in_ns(t.ns("fa")):
                h.guarded("warm-up", lambda: h.iperf_json(vip, 5201, 3))
            for _ in range(3):
                time.sleep(1)
                with h.in_ns(t.ns("fa")):
                    xs.append(h.guarded("bulk", lambda: {"mbit": h.iperf_json(vip, 5201, 8)[0] / 1e6}).get("mbit"))
            out[f"window={win or 'default 2 MiB'} loss={loss}"] = xs
            print(h.time.strftime("%H:%M:%S"), win, loss, xs, flush=True)
        a.stop(); b.stop()
finally:
    h.PROCS.stop_all(); t.destroy()
print(json.dumps(out))
