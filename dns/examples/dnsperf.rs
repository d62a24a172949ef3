//! Benchmark harness (not a test): serves a catalog of N imports on loopback and
//! runs Debian's `dnsperf` against it with 1 and 2 client threads.
//!
//! cargo run --release -p causeway-dns --example dnsperf -- [IMPORTS] [SECONDS]
//! (defaults: 1000 imports, 10 s per run).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a harness, not library code

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;

use causeway_catalog::{CatalogSnapshot, Import, Port, ServiceKey};
use causeway_dns::{Config, DnsServer};
use prometheus_client::registry::Registry;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

fn import(i: u32) -> Import {
    let v4 = IpAddr::V4(Ipv4Addr::from(0x0a60_0000 + i)); // 10.96.0.0/16 onwards
    let mut vips = vec![v4];
    if i.is_multiple_of(2) {
        vips.push(IpAddr::V6(Ipv6Addr::from(
            0xfd00_0077_u128 << 96 | u128::from(i),
        )));
    }
    Import {
        key: ServiceKey::from_str(&format!("ns{}/svc{i}", i % 50)).unwrap(),
        ports: vec![Port::tcp("http", 80), Port::tcp("grpc", 9090)],
        clusters: Vec::new(),
        vips,
        serve_stale: false,
        conditions: Vec::new(),
        endpoints: Vec::new(),
        headless: false,
        props: Default::default(),
    }
}

/// A mix of what clients ask: mostly A/AAAA, some SRV, PTR and misses.
fn queries(n: u32) -> String {
    let mut out = String::new();
    for i in 0..n {
        let svc = format!("svc{i}.ns{}.svc.clusterset.local", i % 50);
        out.push_str(&format!("{svc} A\n{svc} AAAA\n_http._tcp.{svc} SRV\n"));
        if i.is_multiple_of(10) {
            let ip = Ipv4Addr::from(0x0a60_0000 + i).octets();
            let ptr = format!("{}.{}.{}.{}.in-addr.arpa", ip[3], ip[2], ip[1], ip[0]);
            out.push_str(&format!(
                "{ptr} PTR\nmissing{i}.ns0.svc.clusterset.local A\n"
            ));
        }
    }
    out
}

/// Pulls "Queries per second" and the latency lines out of dnsperf's report.
fn summary(report: &str) -> (String, String, String) {
    let field = |key: &str| {
        report
            .lines()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_owned()))
            .unwrap_or_else(|| "?".into())
    };
    (
        field("Queries per second:"),
        field("Average Latency (s):"),
        field("Queries lost:"),
    )
}

/// Resident memory of this process (Linux), for the memory-per-import figure.
fn rss_kb() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:"));
    line.map_or("?".into(), |l| {
        l.trim_start_matches("VmRSS:").trim().to_owned()
    })
}

fn dnsperf(addr: SocketAddr, file: &str, clients: u32, secs: u32) -> String {
    let out = Command::new("dnsperf")
        .args(["-s", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args([
            "-d",
            file,
            "-c",
            &clients.to_string(),
            "-T",
            &clients.to_string(),
        ])
        .args(["-l", &secs.to_string()])
        .output()
        .expect("run dnsperf (Debian package dnsperf)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(1000, |a| a.parse().expect("IMPORTS"));
    let secs: u32 = args.next().map_or(10, |a| a.parse().expect("SECONDS"));
    let rss_before = rss_kb();
    let snap = CatalogSnapshot {
        imports: (0..n).map(import).map(|i| (i.key.clone(), i)).collect(),
        ..CatalogSnapshot::default()
    };
    let cfg = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        reverse_zones: vec!["10.96.0.0/16".parse().unwrap()],
        ..Config::default()
    };
    let (_tx, rx) = watch::channel(Arc::new(snap));
    let mut registry = Registry::default();
    let t0 = std::time::Instant::now();
    let server = DnsServer::bind(&cfg, rx, &mut registry).await.unwrap();
    let built = t0.elapsed();
    let addr = server.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(server.run(shutdown.clone()));

    let file = std::env::temp_dir().join(format!("causeway-dnsperf-{}.txt", std::process::id()));
    std::fs::write(&file, queries(n)).unwrap();
    let file_s = file.to_string_lossy().into_owned();
    println!("causeway-dns on {addr}, {n} imports, {secs} s per run");
    let rss = rss_kb();
    println!("bind + index build: {built:?}; RSS {rss_before} before the catalog, {rss} after");
    println!("| client threads | queries/s | avg latency (s) | lost |");
    println!("|---|---|---|---|");
    for clients in [1, 2] {
        let (a, f) = (addr, file_s.clone());
        let report = tokio::task::spawn_blocking(move || dnsperf(a, &f, clients, secs))
            .await
            .unwrap();
        let (qps, lat, lost) = summary(&report);
        println!("| {clients} | {qps} | {lat} | {lost} |");
        if std::env::var_os("VERBOSE").is_some() {
            println!("{report}");
        }
    }
    let _ = std::fs::remove_file(&file);
    shutdown.cancel();
    task.await.unwrap().unwrap();
}
