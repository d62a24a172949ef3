#!/usr/bin/env python3
"""wanem: a userspace stand-in for `tc netem` (delay, jitter + random loss), packet level.

    wanem.py DEV [--delay-ms 25] [--jitter-ms 0] [--loss 0.01] [--limit 5000] [--stats FILE] [--max-s 3600]

Why: this kernel has no sch_netem, no nft `queue`; TUN works. The harness's namespace topology
(bench/harness.py, section netns) routes every packet that enters the "wan" router namespace from a
cluster's veth into the TUN device DEV (`ip rule add iif VETH lookup 100`, table 100:
`default dev DEV`). This program reads each IP packet from DEV, drops it with probability LOSS,
and writes it back to DEV DELAY ms later; the kernel then sees it arrive on DEV and forwards it by
the main table to the destination cluster's veth. Every packet crosses the emulator once per
direction, so one pass = one way (25 ms each way = 50 ms RTT), like netem on each link.

Unlike a TCP/UDP relay, nothing is terminated here: TCP handshakes, retransmissions and QUIC
packets all pay the delay and the loss, end to end.

Jitter (--jitter-ms J > 0): each packet's delay is drawn uniformly from [DELAY - J, DELAY + J]
(never below 0), independently per packet, and packets leave in due-time order (a heap), so they
reorder: two packets that arrive less than 2J apart swap with a probability that grows as the gap
shrinks, and at Gbit/s rates (packets microseconds apart) nearly every packet is out of order,
like netem's `delay D J` without a rate. The queue bound is the same; packets that leave after one
that arrived later are counted ("reordered"). Without jitter the delay is constant and the queue a
FIFO (packet order kept).

Bounded: at most LIMIT packets wait (netem's `limit`, default 1000 there; 5000 here so that
~2.4 Gbit/s of 1500-byte packets fit in 25 ms); beyond that packets are dropped and counted.
Stops after MAX_S seconds or on SIGTERM/SIGINT; writes counters as JSON to FILE every second and
at exit (keep FILE on tmpfs: a write stalled by disk I/O delays every queued packet).
"""
import argparse
import collections
import fcntl
import gc
import heapq
import json
import os
import random
import select
import signal
import struct
import time

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    # IFF_NO_PI: reads and writes are bare IP packets (no 4-byte protocol header).
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dev")
    ap.add_argument("--delay-ms", type=float, default=25.0)
    ap.add_argument("--jitter-ms", type=float, default=0.0, help="uniform +- around the delay")
    ap.add_argument("--loss", type=float, default=0.0, help="probability, 0.01 = 1 %%")
    ap.add_argument("--limit", type=int, default=5000)
    ap.add_argument("--stats")
    ap.add_argument("--max-s", type=float, default=3600.0)
    ap.add_argument("--seed", type=int, default=8)
    a = ap.parse_args()
    # Nothing here makes reference cycles; the collector's pauses would only delay packets.
    gc.disable()
    fd = open_tun(a.dev)
    delay, loss, rng = a.delay_ms / 1e3, a.loss, random.Random(a.seed)
    jitter = min(a.jitter_ms, a.delay_ms) / 1e3
    # Without jitter the delay is the same for every packet, so arrival order is due-time order: a
    # FIFO is the heap keyed by due time (O(1) instead of O(log n)), and packet order is kept. With
    # jitter, a heap of (due, arrival number, packet).
    q = [] if jitter else collections.deque()
    push = (lambda item: heapq.heappush(q, item)) if jitter else q.append
    pop = (lambda: heapq.heappop(q)) if jitter else q.popleft
    seq = last_out = 0
    st = {"rx": 0, "tx": 0, "lost": 0, "overflow": 0, "max_queue": 0, "write_errors": 0, "max_len": 0,
          "late_ms_max": 0.0, "late_ms_mean": 0.0, "reordered": 0,
          "delay_ms": a.delay_ms, "jitter_ms": jitter * 1e3, "loss": loss, "limit": a.limit}
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    def dump():
        if a.stats:
            tmp = a.stats + ".tmp"
            with open(tmp, "w") as fh:
                json.dump(st, fh)
            os.replace(tmp, a.stats)

    late = 0.0
    t_end = time.monotonic() + a.max_s
    next_dump = 0.0
    while not stop:
        now = time.monotonic()
        if now > t_end:
            break
        if now >= next_dump:
            dump()
            next_dump = now + 1.0
        wait = min(1.0, q[0][0] - now) if q else 1.0
        # select() takes microseconds; poll()/epoll() would round the wait up to whole ms.
        try:
            ready = select.select([fd], [], [], max(0.0, wait))[0]
        except InterruptedError:
            continue
        if ready:
            now = time.monotonic()
            due = now + delay
            # Drain what is there (bounded per wake so that due packets are not starved).
            for _ in range(512):
                try:
                    pkt = os.read(fd, 65535)
                except BlockingIOError:
                    break
                st["rx"] += 1
                if len(pkt) > st["max_len"]:
                    st["max_len"] = len(pkt)
                if loss and rng.random() < loss:
                    st["lost"] += 1
                elif len(q) >= a.limit:
                    st["overflow"] += 1
                else:
                    seq += 1
                    push((max(now, due + rng.uniform(-jitter, jitter)) if jitter else due, seq, pkt))
            if len(q) > st["max_queue"]:
                st["max_queue"] = len(q)
        now = time.monotonic()
        while q and q[0][0] <= now:
            due, n, pkt = pop()
            if n < last_out:
                st["reordered"] += 1
            last_out = max(last_out, n)
            # How late the packet leaves (wake-up and scheduling delay): reported, not hidden.
            late += now - due
            st["late_ms_max"] = max(st["late_ms_max"], (now - due) * 1e3)
            try:
                os.write(fd, pkt)
                st["tx"] += 1
            except OSError:
                st["write_errors"] += 1
        st["late_ms_mean"] = late * 1e3 / st["tx"] if st["tx"] else 0.0
    dump()
    os.close(fd)


if __name__ == "__main__":
    main()
