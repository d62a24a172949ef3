"""Section `udp` of bench/harness.py: UDP through the tunnel against direct, and the stall of a
migration (the importing gateway's sockets moved mid ping-pong by POST /v1/gateway/rebind).

Cluster a imports b's iperf3 (TCP control + UDP data on one port) and a TCP echo. iperf3 -u sends
1,200-byte datagrams at each offered rate, direct to the server and through a -> b; the receiver's
rate and loss are reported, with the CPU both gateways used.
"""

import os
import shutil
import socket
import threading
import time
import urllib.request

IPERF, ECHO = 5411, 5413
RATES = ("100M", "500M", "1G")


def _exports(h):
    iperf = (f"{{ service: bench/udp-iperf, ports: [{{ name: control, port: {IPERF} }}, "
             f"{{ name: data, port: {IPERF}, protocol: UDP }}], "
             f"endpoints: [{{ addr: \"127.0.0.1:{IPERF}\" }}] }}")
    return [iperf, h.export("bench/udp-echo", 16301, ECHO)]


def _iperf_udp(h, host, rate, secs):
    """Receiver Mbit/s and loss % of one iperf3 -u run (retried while the server is busy)."""
    argv = ["timeout", str(secs + 20), "iperf3", "-c", host, "-p", str(IPERF), "-u", "-b", rate,
            "-l", "1200", "-w", "4M", "-t", str(secs), "-J"]
    for _ in range(30):
        j = h.json.loads(h.subprocess.run(argv, capture_output=True, text=True).stdout or "{}")
        if "busy" not in j.get("error", ""):
            break
        time.sleep(1)
    if "error" in j or "end" not in j:
        raise RuntimeError(f"iperf3 -u {host}: {j.get('error')}")
    r = j["end"]["sum_received"]
    return {"mbps": r["bits_per_second"] / 1e6, "lost": r["lost_percent"], "packets": r["packets"]}


def _stall(host, port, admin, secs=3.0):
    """64-byte round trips for SECS; the sockets move at 1 s. Median and longest round trip (ms)."""
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    req = urllib.request.Request(f"http://127.0.0.1:{admin}/v1/gateway/rebind", data=b"", method="POST")
    timer = threading.Timer(1.0, lambda: urllib.request.urlopen(req, timeout=10).read())
    xs, end = [], time.time() + secs
    timer.start()
    while time.time() < end:
        t = time.perf_counter()
        s.sendall(b"m" * 64)
        got = 0
        while got < 64:
            got += len(s.recv(64 - got))
        xs.append((time.perf_counter() - t) * 1e3)
    timer.join()
    s.close()
    xs.sort()
    return {"p50_ms": xs[len(xs) // 2], "max_ms": xs[-1], "n": len(xs)}


def section_udp(args, results, h):
    root = os.path.join(h.WORK, "udp")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    h.PROCS.start("iperf3-udp", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(IPERF)])
    probe = os.path.join(h.HERE, "probes.py")
    h.PROCS.start("echo-udp", [h.sys.executable, probe, "echo", str(ECHO), "3600"])
    for p in (IPERF, ECHO):
        h.wait_until(f"backend {p}", lambda p=p: h.tcp_open(p))
    a0 = h.Cluster("a", 0, root, "127.77.1.0/24")
    b = h.Cluster("b", 1, root, "127.77.2.0/24", exports=_exports(h), peers=[a0])
    a = h.Cluster("a", 0, root, "127.77.1.0/24", peers=[b])
    b.start()
    a.start()
    vip, echo = a.vip("bench/udp-iperf"), a.vip("bench/udp-echo")
    h.wait_until("echo through the tunnel", lambda: h.tcp_open(16301, echo))
    res = {"started": h.time.strftime("%Y-%m-%d %H:%M:%S UTC", h.time.gmtime()),
           "causeway": h.sh(f"cat {h.BIN}/REV"), "reps": args.reps, "secs": args.secs,
           "load_start": h.loadavg(), "runs": [], "stall": []}
    pids = [a.pid, b.pid]
    for rep in range(args.reps):
        for rate in RATES:
            direct = _iperf_udp(h, "127.0.0.1", rate, args.secs)
            c0 = h.cpu_of(pids)
            tunnel = _iperf_udp(h, vip, rate, args.secs)
            cpu = h.cpu_of(pids) - c0
            r = {"rep": rep, "rate": rate, "direct": direct, "tunnel": tunnel, "cpu_s": cpu}
            h.log(f"udp rep {rep + 1}/{args.reps} {rate}: direct {direct['mbps']:.0f} Mbit/s "
                  f"({direct['lost']:.1f} % lost), tunnel {tunnel['mbps']:.0f} ({tunnel['lost']:.1f} %)")
            res["runs"].append(r)
        st = _stall(echo, 16301, a.admin)
        h.log(f"udp rep {rep + 1}/{args.reps}: rebind stall max {st['max_ms']:.1f} ms (p50 {st['p50_ms']:.2f})")
        res["stall"].append(st)
    res["load_end"] = h.loadavg()
    results["udp"] = res


def report(results, h):
    u = results.get("udp")
    L = ["## UDP through the tunnel, and a migration's stall, loopback", ""]
    if not u:
        return L + ["Not measured in this run.", ""]
    L += [f"Measured {u['started']}, causeway {u['causeway']}, {u['reps']} repetitions of {u['secs']} s, "
          f"load {u['load_start']} -> {u['load_end']}. iperf3 -u, 1,200-byte datagrams, 4 MiB socket",
          "buffers: direct to the server, and through a -> b (QUIC datagrams, one flow). Received rate",
          "and loss as the server counted them (medians); CPU: both gateways' user+system seconds per",
          "second of test.", "",
          "| offered | direct Mbit/s | direct loss % | tunnel Mbit/s | tunnel loss % | tunnel / direct | gateways CPU s/s |",
          "|---|---|---|---|---|---|---|"]
    for rate in RATES:
        rs = [r for r in u["runs"] if r["rate"] == rate]
        d = h.med([r["direct"]["mbps"] for r in rs])
        dl = h.med([r["direct"]["lost"] for r in rs])
        t = h.med([r["tunnel"]["mbps"] for r in rs])
        tl = h.med([r["tunnel"]["lost"] for r in rs])
        cpu = h.med([r["cpu_s"] / u["secs"] for r in rs])
        ratio = f"{t / d:.2f}" if d else "-"
        L.append(f"| {rate} | {d:.0f} | {dl:.2f} | {t:.0f} | {tl:.2f} | {ratio} | {cpu:.2f} |")
    st = u["stall"]
    L += ["", f"Migration: a 64-byte ping-pong through the tunnel while a's dialling sockets move to a new port "
          f"(`POST /v1/gateway/rebind`): longest round trip {h.med([s['max_ms'] for s in st]):.1f} ms "
          f"(median of {len(st)} runs; worst {max(s['max_ms'] for s in st):.1f} ms) against a median round trip of "
          f"{h.med([s['p50_ms'] for s in st]):.2f} ms. No connection was reset.", ""]
    return L
