#!/usr/bin/env python3
"""Writes the seed corpora (fuzz/corpus/<target>/seed-*): valid inputs of each
format, so the fuzzer starts from the shapes causeway really reads. Run from
fuzz/: python3 seeds/make.py. The spiffe_san certificates come from the
openssl command line (a throwaway key, never kept)."""
import json, os, struct, subprocess, tempfile

def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])

def field(num, wire, payload):
    key = varint((num << 3) | wire)
    if wire == 0:
        return key + varint(payload)
    return key + varint(len(payload)) + payload

def s(num, text):
    return field(num, 2, text.encode())

def msg(num, body):
    return field(num, 2, body)

def u(num, n):
    return field(num, 0, n)

def port(name, number, proto=1):
    return s(1, name) + u(2, number) + u(3, proto)

def export(ns, name, ports, endpoints=(), export_to=(), created=0, stale=False):
    b = s(1, ns) + s(2, name)
    for p in ports:
        b += msg(3, p)
    for addr, ready in endpoints:
        b += msg(4, s(1, addr) + u(2, 1 if ready else 0))
    for c in export_to:
        b += s(5, c)
    if created:
        b += u(6, created)
    if stale:
        b += u(7, 1)
    return b

def cluster(name="x", gateways=("127.0.0.1:15443",)):
    b = s(1, name) + s(2, "r1") + s(3, "z1") + s(4, name + ".test")
    for g in gateways:
        b += s(5, g)
    return b

def update(kind, body):
    m = msg(kind, body)
    return varint(len(m)) + m

def snapshot(epoch, version, exports, gateways=("127.0.0.1:15443",)):
    b = u(1, epoch) + u(2, version) + msg(3, cluster(gateways=gateways))
    for e in exports:
        b += msg(4, e)
    return update(1, b)

def delta(epoch, frm, to, upserts=(), removals=()):
    b = u(1, epoch) + u(2, frm) + u(3, to)
    for e in upserts:
        b += msg(4, e)
    for r in removals:
        b += s(5, r)
    return update(3, b)

def heartbeat(epoch, version):
    return update(4, u(1, epoch) + u(2, version))

def resumed(epoch, version):
    return update(2, u(1, epoch) + u(2, version) + msg(3, cluster()))

def write(target, name, data):
    d = os.path.join("corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())

web = export("demo", "web", [port("http", 80)], [("10.0.0.1:8080", True), ("10.0.0.2:8080", False)])
db = export("shop", "db", [port("pg", 5432), port("metrics", 9187)], [("10.0.0.3:5432", True)], ["west"], 1700000000000, True)
sys = export("kube-system", "kube-dns", [port("dns", 53, 2)])
write("peer_view_apply", "session", snapshot(7, 1, [web, db]) + delta(7, 1, 2, [sys], ["demo/web"]) + heartbeat(7, 2) + resumed(7, 2))
write("peer_view_apply", "many", snapshot(1, 1, [export("ns", "s%d" % i, [port("p", 80 + i)]) for i in range(12)], ("10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1")))
write("peer_view_apply", "out-of-order", delta(1, 5, 6) + snapshot(2, 1, []) + delta(2, 1, 1))

def header(ns, name, port_no, proto, target, trace):
    b = bytes([len(ns)]) + ns.encode() + bytes([len(name)]) + name.encode()
    b += struct.pack(">H", port_no) + bytes([proto])
    b += bytes([len(target)]) + target.encode() + bytes([len(trace)]) + trace.encode()
    return b

write("stream_header", "plain", header("demo", "web", 80, 0, "", ""))
write("stream_header", "target", header("shop", "db", 5432, 1, "west", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))

def dns_query(name, qtype, edns=None, ident=0x1234):
    h = struct.pack(">HHHHHH", ident, 0x0100, 1, 0, 0, 1 if edns else 0)
    q = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".") if l) + b"\0"
    q += struct.pack(">HH", qtype, 1)
    if edns:
        q += b"\0" + struct.pack(">HHIH", 41, edns, 0, 0)
    return h + q

write("dns_fast_path", "a", dns_query("web.demo.svc.clusterset.local", 1))
write("dns_fast_path", "aaaa-edns", dns_query("web.demo.svc.clusterset.local", 28, 1232))
write("dns_fast_path", "srv", dns_query("_http._tcp.web.demo.svc.clusterset.local", 33))
write("dns_fast_path", "nx", dns_query("nope.demo.svc.clusterset.local", 1))
write("dns_fast_path", "ptr", dns_query("1.1.77.127.in-addr.arpa", 12))
write("dns_fast_path", "out-of-zone", dns_query("example.com", 1))

write("spiffe_san", "id", "spiffe://east.demo.causeway/gateway")
write("spiffe_san", "id-path", "spiffe://a.b/ns/x/sa/y")

catalog = open("catalog.json").read()
write("state_json", "catalog", catalog)
view = {"info": {"name": "west", "region": "r2", "zone": "z2", "trust_domain": "west.test", "gateways": ["127.0.0.2:15443"]},
        "epoch": 3, "version": 9,
        "exports": [{"service": "demo/web", "ports": [{"name": "http", "port": 80}], "endpoints": [{"addr": "10.0.0.1:80"}],
                     "export_to": "all", "created_at": 1700000000000, "serve_stale": False},
                    {"service": "kube-system/x", "ports": [{"port": 1, "protocol": "UDP"}], "export_to": ["east"]}]}
write("state_json", "peer-view", json.dumps(view))
write("state_json", "local", json.dumps({"epoch": 1, "version": 2, "exports": view["exports"]}))
write("state_json", "vips", json.dumps({"demo/web": ["127.77.1.1", "fd00::1"]}))
write("state_json", "local-exports", json.dumps(view["exports"]))

se = {"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
      "metadata": {"name": "web", "namespace": "demo", "creationTimestamp": "2026-01-01T00:00:00Z",
                   "annotations": {"causeway.io/export-to": "west,south", "causeway.io/serve-stale": "true"}}}
svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "demo"},
       "spec": {"clusterIP": "10.0.0.5", "ports": [{"name": "http", "port": 80, "targetPort": 8080}, {"name": "dns", "port": 53, "protocol": "UDP"}]}}
slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
          "metadata": {"name": "web-abc", "namespace": "demo", "labels": {"kubernetes.io/service-name": "web"}},
          "addressType": "IPv4", "ports": [{"name": "http", "port": 8080}],
          "endpoints": [{"addresses": ["10.1.0.5"], "conditions": {"ready": True}}, {"addresses": ["10.1.0.6"], "conditions": {"ready": False}}]}
write("service_export", "web", json.dumps([se, svc, [slice_]]))
write("service_export", "no-service", json.dumps([se, None, []]))
headless = json.loads(json.dumps(svc)); headless["spec"]["clusterIP"] = "None"
write("service_export", "headless", json.dumps([se, headless, []]))


def der_cert(san):
    with tempfile.TemporaryDirectory() as d:
        key, out = os.path.join(d, "k.pem"), os.path.join(d, "c.der")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", key, "-subj", "/CN=x", "-days", "1", "-addext",
                        "subjectAltName=" + san, "-outform", "DER", "-out", out],
                       check=True, capture_output=True)
        return open(out, "rb").read()

try:
    write("spiffe_san", "cert-gateway", der_cert("URI:spiffe://east.demo.causeway/gateway"))
    write("spiffe_san", "cert-two-uris", der_cert("URI:spiffe://a.b/x,URI:spiffe://c.d/y"))
    write("spiffe_san", "cert-dns-only", der_cert("DNS:example.com"))
except (OSError, subprocess.CalledProcessError) as e:
    print("no openssl: certificate seeds skipped (%s)" % e)
