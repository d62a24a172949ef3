#!/usr/bin/env python3
"""Bounded TCP/DNS probes for the benchmark harness (loopback or harness-made namespaces only).

  probes.py echo PORT [MAX_S] [HOST]     threaded echo server on HOST:PORT (127.0.0.1), exits after MAX_S
  probes.py who PORT TAG [MAX_S] [HOST]  reads 64 bytes, answers TAG padded to 64 bytes, closes
  probes.py pingpong HOST PORT [N] [MSG] N round trips of MSG bytes on one connection (JSON, us)
  probes.py connect HOST PORT [N]        N new connections: connect + one 64 B round trip (JSON, us)
  probes.py sink PORT [MAX_S] [HOST]     reads each connection to EOF, answers the byte count (8 B)
  probes.py blast HOST PORT BYTES [CONNS] CONNS connections (all open first) send BYTES in all to a
                                         sink, half-close, check its counts (JSON)

Started from ../shared/bench/envoy-pair/tcp_rr.py (same method, so figures are comparable), with
p99.9 added and JSON output. Every loop is bounded in count and in time (LIMIT_S).
"""
import json
import socket
import struct
import sys
import threading
import time

LIMIT_S = 60.0


def pct(xs, p):
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, int(round(p / 100.0 * len(xs) + 0.5)) - 1))
    return xs[k]


def summary(xs):
    us = [x * 1e6 for x in xs]
    if not us:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "p999": None, "max": None}
    return {"n": len(us), "p50": pct(us, 50), "p90": pct(us, 90), "p99": pct(us, 99),
            "p999": pct(us, 99.9), "max": max(us)}


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return bytes(buf)


def serve(port, handler, max_seconds=3600.0, host="127.0.0.1"):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(4096)
    ls.settimeout(1.0)
    deadline = time.time() + max_seconds
    while time.time() < deadline:
        try:
            c, _ = ls.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handler, args=(c,), daemon=True).start()


def echo_handler(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with c:
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    return
                c.sendall(d)
        except OSError:
            return


def who_handler(tag):
    reply = tag.encode().ljust(64, b".")

    def handle(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.settimeout(10)
        with c:
            try:
                recv_exact(c, 64)
                c.sendall(reply)
            except OSError:
                return
    return handle


def sink_handler(c):
    """Counts what arrives until EOF, then answers the count (8 bytes, big endian) and closes."""
    buf = bytearray(1 << 18)
    n = 0
    c.settimeout(LIMIT_S * 10)
    with c:
        try:
            while True:
                k = c.recv_into(buf)
                if not k:
                    break
                n += k
            c.sendall(struct.pack(">Q", n))
        except OSError:
            return


def blast_one(s, nbytes, chunk, deadline):
    """Sends NBYTES on S, half-closes, returns the count the sink confirmed."""
    left = nbytes
    while left > 0 and time.time() < deadline:
        k = min(left, len(chunk))
        s.sendall(chunk[:k])
        left -= k
    s.shutdown(socket.SHUT_WR)
    return struct.unpack(">Q", recv_exact(s, 8))[0]


def blast(host, port, total, conns=1, timeout=600.0):
    """CONNS connections to a sink, all connected before any byte is sent; together they send
    TOTAL bytes (split evenly), half-close and read the sink's count. Bounded by TIMEOUT.
    Returns bytes the sink confirmed, connections that failed or came up short, and seconds."""
    per = [total // conns + (1 if i < total % conns else 0) for i in range(conns)]
    chunk = memoryview(b"z" * (1 << 20))
    deadline = time.time() + timeout
    socks = [socket.create_connection((host, port), timeout=timeout) for _ in range(conns)]
    got = [None] * conns

    def run(i):
        try:
            got[i] = blast_one(socks[i], per[i], chunk, deadline)
        except (OSError, ConnectionError, struct.error):
            got[i] = None
    t0 = time.perf_counter()
    ts = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(max(0.0, deadline - time.time()))
    secs = time.perf_counter() - t0
    for s in socks:
        s.close()
    failed = sum(1 for g, p in zip(got, per) if g != p)
    return {"bytes": sum(g or 0 for g in got), "conns": conns, "failed": failed, "secs": secs}


def pingpong(host, port, n=10000, msg=64, warm=500):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = b"x" * msg
    xs = []
    t_end = time.time() + LIMIT_S
    for _ in range(warm):  # warm-up
        s.sendall(out)
        recv_exact(s, msg)
    for _ in range(n):
        if time.time() > t_end:
            break
        t = time.perf_counter()
        s.sendall(out)
        recv_exact(s, msg)
        xs.append(time.perf_counter() - t)
    s.close()
    return summary(xs)


def connect(host, port, n=300):
    """Failed attempts (refused, reset, timed out) are counted in first_byte["errors"], not timed."""
    xs_c, xs_f, errors = [], [], 0
    out = b"y" * 64
    t_end = time.time() + LIMIT_S
    for _ in range(n):
        if time.time() > t_end:
            break
        t = time.perf_counter()
        try:
            with socket.create_connection((host, port), timeout=10) as s:
                xs_c.append(time.perf_counter() - t)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s.settimeout(10)
                s.sendall(out)
                recv_exact(s, 64)
                xs_f.append(time.perf_counter() - t)
        except (OSError, ConnectionError):
            errors += 1
    r = {"connect": summary(xs_c), "first_byte": summary(xs_f)}
    r["first_byte"]["errors"] = errors
    return r


def who_once(host, port, timeout):
    """One new connection: send 64 bytes, return the answering server's tag (or None)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(b"q" * 64)
            return recv_exact(s, 64).rstrip(b".").decode()
    except (OSError, ConnectionError):
        return None


def dns_query(name, qtype=1):
    """A minimal DNS query packet (RD off) for NAME/QTYPE."""
    qid = int(time.perf_counter_ns() & 0xFFFF)
    hdr = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    q = b"".join(bytes([len(p)]) + p.encode() for p in name.rstrip(".").split(".")) + b"\0"
    return hdr + q + struct.pack(">HH", qtype, 1)


def dns_answers(sock, addr, name, timeout=0.2):
    """(rcode, answer count) for an A query, or None on timeout."""
    sock.settimeout(timeout)
    pkt = dns_query(name)
    sock.sendto(pkt, addr)
    try:
        while True:
            data, _ = sock.recvfrom(4096)
            if data[:2] == pkt[:2]:
                flags, _, ancount = struct.unpack(">HHH", data[2:8])
                return flags & 0xF, ancount
    except socket.timeout:
        return None


def main():
    mode = sys.argv[1]
    a = sys.argv[2:]
    if mode == "echo":
        serve(int(a[0]), echo_handler, float(a[1]) if len(a) > 1 else 3600.0,
              a[2] if len(a) > 2 else "127.0.0.1")
    elif mode == "who":
        serve(int(a[0]), who_handler(a[1]), float(a[2]) if len(a) > 2 else 3600.0,
              a[3] if len(a) > 3 else "127.0.0.1")
    elif mode == "sink":
        serve(int(a[0]), sink_handler, float(a[1]) if len(a) > 1 else 3600.0,
              a[2] if len(a) > 2 else "127.0.0.1")
    elif mode == "blast":
        print(json.dumps(blast(a[0], int(a[1]), int(a[2]), *[int(x) for x in a[3:]])))
    elif mode == "pingpong":
        print(json.dumps(pingpong(a[0], int(a[1]), *[int(x) for x in a[2:]])))
    elif mode == "connect":
        print(json.dumps(connect(a[0], int(a[1]), *[int(x) for x in a[2:]])))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
