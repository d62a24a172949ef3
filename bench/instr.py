#!/usr/bin/env python3
"""Instructions per GiB through two causeway gateways (and the Envoy pair): a CPU-per-byte figure
that stays put on a noisy machine. Run through bench/instr.sh, which documents the method.

    instr.py [--bytes 64M] [--conns 100] [--tool auto|callgrind|perf] [--no-envoy] BIN [BIN2]

Every process it starts is stopped by PID; every wait has a deadline.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import harness as h
import probes

SINK_PORT = 5291          # the backend: probes.py sink (counts bytes to EOF, answers the count)
CLUSTER_IDX = (40, 41)    # cluster ports 25000-25153: apart from bench/run.sh's (21000-21153)
VIP_RANGES = ("127.79.1.0/24", "127.79.2.0/24")
ENVOY_PORTS = {"a": 15091, "b": 15491, "admin": (9911, 9912)}
PHASES = ("idle", "zero_1", "bulk_1", "zero_n", "bulk_n")


def parse_size(s):
    m = re.fullmatch(r"(\d+)\s*([kmg]?)(i?b)?", s.strip().lower())
    if not m:
        raise argparse.ArgumentTypeError(f"{s!r}: expected bytes, e.g. 67108864, 64M or 256MiB")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2)]


# ---------------------------------------------------------------- counters


class Callgrind:
    """Each process runs under callgrind; mark() dumps every process (`callgrind_control --dump`),
    and each dump holds the instructions (Ir, user space) executed since the previous one."""

    name = "callgrind"

    def __init__(self, out):
        self.out, self.dumps, self.procs = out, {}, {}
        self.prefix = os.path.join(out, "vgdb")

    def wrap(self, name):
        # %p: Envoy A and B share one prefix; dump N of process PID lands in NAME.PID.N.
        return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={self.out}/{name}.%p",
                f"--vgdb-prefix={self.prefix}", "--vgdb=yes", "--fair-sched=try"]

    def attach(self, procs, names):
        self.procs, self.names = dict(procs), dict(names)
        self.dumps = {n: 0 for n in self.procs}

    def mark(self, label):
        return {n: self.dump(n, pid, label) for n, pid in self.procs.items()}

    def dump(self, n, pid, label):
        self.dumps[n] += 1
        f = f"{self.out}/{self.names[n]}.{pid}.{self.dumps[n]}"
        r = subprocess.run(["timeout", "120", "callgrind_control", f"--vgdb-prefix={self.prefix}",
                            f"--dump={label}", str(pid)], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"callgrind_control --dump {pid}: {r.stdout.strip()} {r.stderr.strip()}")
        return h.wait_until(f"callgrind dump {f}", lambda: totals(f), timeout=120, every=0.1)

    def stop(self):
        pass


def totals(path):
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith("totals:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Perf:
    """Native processes; mark() stops one `perf stat -e instructions -p PID` per process (user and
    kernel instructions) and starts the next, so each mark counts since the previous one."""

    name = "perf"

    def __init__(self, out, event="instructions"):
        self.out, self.event, self.running, self.n = out, event, {}, 0

    def wrap(self, name):
        return []

    def attach(self, procs, names):
        self.procs = dict(procs)
        self.start()

    def start(self):
        self.n += 1
        for name, pid in self.procs.items():
            f = os.path.join(self.out, f"{name}.perf.{self.n}")
            p = subprocess.Popen(["perf", "stat", "-x,", "-e", self.event, "-p", str(pid), "-o", f],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.running[name] = (p, f)
        time.sleep(0.3)  # perf attaches asynchronously

    def mark(self, label):
        counts = {}
        for name, (p, f) in self.running.items():
            p.send_signal(signal.SIGINT)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            counts[name] = perf_count(f, self.event)
        self.start()
        return counts

    def stop(self):
        for p, _ in self.running.values():
            if p.poll() is None:
                p.kill()
                p.wait()
        self.running = {}


def perf_count(path, event):
    with open(path) as fh:
        for line in fh:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[2].startswith(event):
                # "<not counted>": the process did not run in the window.
                return int(float(parts[0])) if parts[0].replace(".", "", 1).isdigit() else 0
    return None


# ---------------------------------------------------------------- contenders


def rev_of(binary):
    """The git revision run.sh records beside its copy of the binary, if any."""
    f = os.path.join(os.path.dirname(os.path.abspath(binary)), "REV")
    return open(f).read().strip() if os.path.exists(f) else None


# Valgrind runs a process tens of times slower: timers that would take that for a dead peer or a
# stuck stream are widened. None of them is on the per-byte path (keep-alives only go out on an
# idle connection, and the idle phase measures them). Per concern, the first alternative the
# binary's config check accepts is used (builds with and without connections.liveness).
RELAXED = [
    ["  timeouts: { connect: 30s, handshake: 120s, header: 120s, status: 120s }\n"],
    ["  connections: { keep_alive: 1s, liveness: 30s, idle_timeout: 60s }\n",
     "  connections: { keep_alive: 1s, idle_timeout: 60s }\n"],
]


def add_gateway_line(cluster, line):
    with open(cluster.cfg) as fh:
        text = fh.read()
    with open(cluster.cfg, "w") as fh:
        fh.write(text.replace("gateway:\n", "gateway:\n" + line, 1))


def prepare(cluster, workers):
    """Relaxed timers (RELAXED; federation leases of a minute), --workers where the build has
    gateway.workers. Returns gateway.workers as in effect (None: a build without it)."""
    with open(cluster.cfg) as fh:
        text = fh.read().replace("stale_after: 2s", "stale_after: 60s").replace("expire_after: 6s", "expire_after: 120s")
    with open(cluster.cfg, "w") as fh:
        fh.write(text)
    for alternatives in RELAXED:
        line = next((x for x in alternatives if h.gateway_accepts(cluster, x)), None)
        if line:
            add_gateway_line(cluster, line)
        else:
            h.log(f"instr: {cluster.name}: this build takes none of {[x.strip() for x in alternatives]}; left at defaults")
    if workers is not None:
        if h.gateway_accepts(cluster, f"  workers: {workers}\n"):
            add_gateway_line(cluster, f"  workers: {workers}\n")
        else:
            h.log(f"instr: {h.CAUSEWAY} has no gateway.workers; --workers {workers} ignored")
    return h.gateway_workers(cluster)


def start_causeway(binary, label, counter, args):
    """Clusters a (client side) and b (exports the sink), as bench/harness.py's dataplane section
    configures them (default data-path settings; timers relaxed, see RELAXED), each `causeway run`
    under the counter."""
    h.CAUSEWAY = os.path.abspath(binary)
    root = os.path.join(h.WORK, "instr", label)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    exp = [h.export("bench/sink", SINK_PORT, SINK_PORT)]
    stub = h.Cluster("b", CLUSTER_IDX[1], root, VIP_RANGES[1], exports=exp)
    a = h.Cluster("a", CLUSTER_IDX[0], root, VIP_RANGES[0], peers=[stub])
    b = h.Cluster("b", CLUSTER_IDX[1], root, VIP_RANGES[1], exports=exp, peers=[a])
    workers = [prepare(c, args.workers) for c in (a, b)][0]
    for c in (b, a):
        h.log(f"instr: {label}: starting gateway {c.name} ({counter.name})")
        c.start(wrap=counter.wrap(f"{label}-{c.name}"), timeout=args.timeout)
    vip = a.vip("bench/sink", timeout=args.timeout)
    pids = {"a": a.pid, "b": b.pid}
    names = {"a": f"{label}-a", "b": f"{label}-b"}
    info = {"binary": h.CAUSEWAY, "rev": rev_of(binary), "workers": workers,
            "stop": ["causeway-a", "causeway-b"]}
    return pids, names, (vip, SINK_PORT), info


def start_envoy(label, counter, args):
    """The loopback section's Envoy pair (bench/harness.py envoy_configs) on ports of its own; its
    upstream connect timeout widened to 60 s for valgrind."""
    root = os.path.join(h.WORK, "instr", label)
    shutil.rmtree(root, ignore_errors=True)
    h.log(f"instr: {label}: starting the Envoy pair ({counter.name})")
    wrap = counter.wrap(label)
    h.start_envoy_pair(root, [("sink", ENVOY_PORTS["a"], SINK_PORT)], b_port=ENVOY_PORTS["b"],
                       admin=ENVOY_PORTS["admin"], b_listen_port=ENVOY_PORTS["b"],
                       wrap=wrap, timeout=args.timeout, connect_timeout="60s")
    pids = {"a": h.PROCS.pid("envoy-a"), "b": h.PROCS.pid("envoy-b")}
    info = {"binary": h.envoy_binary() if wrap else h.ENVOY, "workers": "2 (--concurrency 2)",
            "stop": ["envoy-a", "envoy-b"]}
    return pids, {"a": label, "b": label}, ("127.0.0.1", ENVOY_PORTS["a"]), info


# ---------------------------------------------------------------- phases


def run_phase(phase, addr, args):
    if phase == "idle":
        time.sleep(args.idle_s)
        return {"bytes": 0, "conns": 0, "failed": 0}
    nbytes = 0 if phase.startswith("zero") else args.bytes
    conns = 1 if phase.endswith("_1") else args.conns
    r = probes.blast(*addr, nbytes, conns, args.timeout)
    if r["failed"] or r["bytes"] != nbytes:
        raise RuntimeError(f"{phase}: {r['failed']} of {conns} connections failed or came up "
                           f"short ({r['bytes']} of {nbytes} bytes confirmed by the sink)")
    return r


def measure(pids, names, addr, counter, args):
    """A warm-up (handshakes, first streams, allocator), then each phase between two marks. A
    phase's instructions and seconds run from the previous mark to its own."""
    counter.attach(pids, names)
    probes.blast(*addr, 1 << 20, 1, args.timeout)
    probes.blast(*addr, 0, args.conns, args.timeout)
    time.sleep(args.settle_s)
    res = {"startup": {"ir": counter.mark("startup")}}
    t_mark = time.perf_counter()
    for phase in PHASES:
        h.log(f"instr:   {phase}")
        r = run_phase(phase, addr, args)
        time.sleep(args.settle_s)  # stream and TCP teardown land in this phase
        r["ir"] = counter.mark(phase)
        now = time.perf_counter()
        r["secs"] = now - t_mark
        t_mark = now
        res[phase] = r
    return res


def derive(res):
    """Per process and summed: instructions per GiB, gross (the bulk window) and net (the bulk
    window minus the same connections with no payload, minus idle background for the extra
    seconds the bulk window took)."""
    procs = list(res["idle"]["ir"])
    rate = {n: res["idle"]["ir"][n] / res["idle"]["secs"] for n in procs}
    out = {"idle_ir_per_s": rate}
    for k in ("1", "n"):
        bulk, zero = res[f"bulk_{k}"], res[f"zero_{k}"]
        gib = bulk["bytes"] / h.GIB
        extra_s = bulk["secs"] - zero["secs"]
        net = {n: bulk["ir"][n] - zero["ir"][n] - rate[n] * extra_s for n in procs}
        net["sum"] = sum(net[n] for n in procs)
        gross = {n: bulk["ir"][n] for n in procs}
        gross["sum"] = sum(gross.values())
        out[k] = {"net_per_gib": {n: v / gib for n, v in net.items()},
                  "gross_per_gib": {n: v / gib for n, v in gross.items()},
                  "idle_share": sum(rate.values()) * extra_s / net["sum"] if net["sum"] else None,
                  "zero_share": sum(zero["ir"].values()) / gross["sum"] if gross["sum"] else None}
    return out


def contender(kind, label, binary, tool, args):
    out = os.path.join(h.WORK, "instr", f"{label}.{tool}")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    counter = Callgrind(out) if tool == "callgrind" else Perf(out, args.perf_event)
    info = {}
    try:
        if kind == "causeway":
            pids, names, addr, info = start_causeway(binary, label, counter, args)
        else:
            pids, names, addr, info = start_envoy(label, counter, args)
        res = measure(pids, names, addr, counter, args)
        info.pop("stop", None)
        return {"label": label, "kind": kind, "tool": tool, "profiles": out, **info,
                "phases": res, "derived": derive(res)}
    finally:
        counter.stop()
        for name in ("causeway-a", "causeway-b", "envoy-a", "envoy-b"):
            h.PROCS.kill(name)


# ---------------------------------------------------------------- report


def g(x, unit=1e9, fmt="{:.2f}"):
    return "n/a" if x is None else fmt.format(x / unit)


def table(res):
    """The figures as text: one column per contender."""
    runs = res["runs"]
    heads = [f"{r['label']}" + (f" ({r['rev']})" if r.get("rev") else "") for r in runs]
    rows = []
    for k, what in (("1", "1 connection"), ("n", f"{res['conns']} connections")):
        for n, who in (("a", "gateway a (client side)"), ("b", "gateway b (server side)"), ("sum", "both")):
            rows.append((f"{what}: {who}, net", [g(r["derived"][k]["net_per_gib"][n]) for r in runs]))
        rows.append((f"{what}: both, gross (whole window)", [g(r["derived"][k]["gross_per_gib"]["sum"]) for r in runs]))
        rows.append((f"{what}: share of the window that was zero-byte work",
                     [g(r["derived"][k]["zero_share"], 0.01, "{:.0f} %") for r in runs]))
    rows.append(("start-up + warm-up, both (G instructions)",
                 [g(sum((r["phases"]["startup"]["ir"][n] or 0) for n in ("a", "b"))) for r in runs]))
    rows.append(("idle background, both (M instructions/s)",
                 [g(sum(r["derived"]["idle_ir_per_s"].values()), 1e6, "{:.1f}") for r in runs]))
    rows.append(("bulk window, 1 / N connections (s)",
                 [f"{r['phases']['bulk_1']['secs']:.0f} / {r['phases']['bulk_n']['secs']:.0f}" for r in runs]))
    rows.append(("gateway.workers", [r.get("workers") or "none (1 runtime)" for r in runs]))
    w = max(len(name) for name, _ in rows)
    cw = max(12, *(len(x) for x in heads))
    L = [f"instructions per GiB, G = 1e9 ({res['tool']}: {TOOL_NOTE[res['tool']]}); "
         f"{res['bytes'] / (1 << 20):.0f} MiB per bulk window", "",
         "".ljust(w) + "  " + "  ".join(x.rjust(cw) for x in heads)]
    for name, vals in rows:
        L.append(name.ljust(w) + "  " + "  ".join(v.rjust(cw) for v in vals))
    L += [""] + ratios(runs)
    if res["tool"] == "callgrind":
        L += ["", "per-phase profiles: NAME.PID.N in " + ", ".join(r["profiles"] for r in runs),
              "  N = " + ", ".join(f"{i + 1} {p}" for i, p in enumerate(("startup",) + PHASES)) +
              "; read with `callgrind_annotate --threshold=100 FILE | head -60`"]
    return "\n".join(L)


TOOL_NOTE = {"callgrind": "user-space instructions under valgrind",
             "perf": "user + kernel instructions, perf stat"}


def ratios(runs):
    L = []
    cw = [r for r in runs if r["kind"] == "causeway"]
    env = [r for r in runs if r["kind"] == "envoy"]
    for k in ("1", "n"):
        s = lambda r: r["derived"][k]["net_per_gib"]["sum"]
        if len(cw) == 2 and s(cw[0]):
            L.append(f"{'1 connection' if k == '1' else 'N connections'}, both, net: "
                     f"{cw[1]['label']} / {cw[0]['label']} = {s(cw[1]) / s(cw[0]):.2f}x")
        for c in cw:
            if env and s(env[0]):
                L.append(f"{'1 connection' if k == '1' else 'N connections'}, both, net: "
                         f"{c['label']} / envoy pair = {s(c) / s(env[0]):.2f}x")
    return L


# ---------------------------------------------------------------- main


def choose_tool(want):
    if want in ("auto", "perf") and h.perf_supported():
        return "perf"
    if want == "perf":
        raise SystemExit("instr: `perf stat -e instructions` is not supported here; use --tool callgrind")
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        raise SystemExit("instr: valgrind is missing (apt-get install valgrind, or bench/setup.sh)")
    return "callgrind"


def run(binaries, args):
    """Measures each binary, then the Envoy pair unless args.no_envoy; returns the results."""
    tool = "perf" if args.perf_event != "instructions" else choose_tool(args.tool)
    res = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "load_start": h.loadavg(),
           "tool": tool, "bytes": args.bytes, "conns": args.conns, "idle_s": args.idle_s, "runs": []}
    h.PROCS.start("instr-sink", [sys.executable, os.path.join(h.HERE, "probes.py"), "sink",
                                 str(SINK_PORT), str(24 * 3600)])
    h.wait_until("sink", lambda: h.tcp_open(SINK_PORT))
    try:
        labels = ["BIN", "BIN2"] if len(binaries) == 2 else ["causeway"]
        todo = [("causeway", label, b) for label, b in zip(labels, binaries)]
        if args.no_envoy:
            pass
        elif os.path.exists(h.ENVOY):
            todo.append(("envoy", "envoy", None))
        else:
            h.log(f"instr: no Envoy at {h.ENVOY} (bench/setup.sh installs it); skipped")
        for kind, label, b in todo:
            r = h.guarded(label, lambda: contender(kind, label, b, tool, args))
            if "error" in r:
                res.setdefault("errors", {})[label] = r["error"]
            else:
                res["runs"].append(r)
    finally:
        h.PROCS.kill("instr-sink")
    res["load_end"] = h.loadavg()
    return res


def parser():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binaries", nargs="+", metavar="BIN", help="causeway binary; a second one to compare")
    ap.add_argument("--bytes", type=parse_size, default=64 << 20, help="per bulk window (64M)")
    ap.add_argument("--conns", type=int, default=100, help="concurrent connections (100)")
    ap.add_argument("--idle-s", type=float, default=5.0, help="idle window for the background rate")
    ap.add_argument("--settle-s", type=float, default=1.0, help="pause after each phase before its mark")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per start-up and per phase, seconds")
    ap.add_argument("--workers", type=int, help="gateway.workers, where the build has it (default: its default)")
    ap.add_argument("--tool", choices=("auto", "callgrind", "perf"), default="auto")
    ap.add_argument("--perf-event", default="instructions", help=argparse.SUPPRESS)  # plumbing tests
    ap.add_argument("--no-envoy", action="store_true")
    ap.add_argument("--json", default=os.path.join(h.WORK, "instr.json"))
    return ap


def main():
    args = parser().parse_args()
    if len(args.binaries) > 2:
        raise SystemExit("instr: at most two binaries (BIN [BIN2])")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        res = run(args.binaries, args)
    finally:
        h.PROCS.stop_all()
    with open(args.json, "w") as fh:
        json.dump(res, fh, indent=1)
    if res["runs"]:
        print(table(res))
    for label, e in res.get("errors", {}).items():
        print(f"{label}: failed: {e}")
    h.log(f"instr: wrote {args.json}")


if __name__ == "__main__":
    main()
