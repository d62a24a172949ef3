//! The server as BIND's `dig` (Debian bind9-dnsutils) sees it. Skipped, with a
//! message saying so, when `dig` is not installed.

#![allow(clippy::unwrap_used)] // tests may unwrap (workspace lint policy)

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;

use common::{fixture, import, snapshot, start};

/// What dig printed, reduced to what the tests compare.
#[derive(Debug, Default)]
struct Dig {
    status: String,
    flags: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
}

fn dig_available() -> bool {
    match Command::new("dig").arg("-v").output() {
        Ok(_) => true,
        Err(e) => {
            eprintln!(
                "SKIPPED: `dig` could not be run ({e}); install bind9-dnsutils to run these tests"
            );
            false
        }
    }
}

/// Runs `dig @addr <args>` off the runtime (it blocks) and parses its output.
async fn dig(addr: SocketAddr, args: &[&str]) -> Dig {
    let mut cmd = Command::new("dig");
    cmd.arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string()])
        .args(["+norecurse", "+time=2", "+tries=3"])
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "dig {args:?} failed: {text}");
    parse(&text)
}

fn parse(text: &str) -> Dig {
    let mut d = Dig::default();
    let mut section: Option<&mut Vec<String>> = None;
    for line in text.lines() {
        if let Some(rest) = line.split("status: ").nth(1) {
            d.status = rest.split(',').next().unwrap_or_default().to_owned();
        } else if let Some(rest) = line.strip_prefix(";; flags: ") {
            let flags = rest.split(';').next().unwrap_or_default();
            d.flags = flags.split_whitespace().map(str::to_owned).collect();
        }
        section = match line {
            ";; ANSWER SECTION:" => Some(&mut d.answer),
            ";; AUTHORITY SECTION:" => Some(&mut d.authority),
            ";; ADDITIONAL SECTION:" => Some(&mut d.additional),
            "" => None,
            l if l.starts_with(';') => section,
            l => {
                if let Some(s) = section.as_mut() {
                    s.push(l.split_whitespace().collect::<Vec<_>>().join(" "));
                }
                section
            }
        };
    }
    d
}

/// "TYPE rdata" of each answer record, dropping the owner, TTL and class.
fn rdata(records: &[String]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.split(' ').skip(3).collect::<Vec<_>>().join(" "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_record_kind() {
    if !dig_available() {
        return;
    }
    let s = start(fixture()).await;
    let cases: &[(&[&str], &[&str])] = &[
        (&["web.demo.svc.clusterset.local", "A"], &["A 10.96.0.10"]),
        (
            &["v6only.demo.svc.clusterset.local", "AAAA"],
            &["AAAA fd00:77::20"],
        ),
        (&["dual.demo.svc.clusterset.local", "A"], &["A 10.96.0.30"]),
        (
            &["dual.demo.svc.clusterset.local", "AAAA"],
            &["AAAA fd00:77::30"],
        ),
        (
            &["_https._tcp.web.demo.svc.clusterset.local", "SRV"],
            &["SRV 0 100 443 web.demo.svc.clusterset.local."],
        ),
        (
            &["_dns._udp.v6only.demo.svc.clusterset.local", "SRV"],
            &["SRV 0 100 53 v6only.demo.svc.clusterset.local."],
        ),
        (&["dns-version.clusterset.local", "TXT"], &["TXT \"1.0.0\""]),
        (
            &["-x", "10.96.0.30"],
            &["PTR dual.demo.svc.clusterset.local."],
        ),
        (
            &["-x", "fd00:77::20"],
            &["PTR v6only.demo.svc.clusterset.local."],
        ),
        (
            &["clusterset.local", "NS"],
            &["NS ns.dns.clusterset.local."],
        ),
    ];
    for (args, want) in cases {
        let d = dig(s.addr, args).await;
        assert_eq!(d.status, "NOERROR", "{args:?}");
        assert!(d.flags.contains(&"aa".to_owned()), "{args:?}: {d:?}");
        assert_eq!(rdata(&d.answer), *want, "{args:?}");
    }
    let soa = dig(s.addr, &["clusterset.local", "SOA"]).await;
    assert!(
        rdata(&soa.answer)[0]
            .starts_with("SOA ns.dns.clusterset.local. hostmaster.clusterset.local. ")
    );
    let srv = dig(
        s.addr,
        &["_grpc._tcp.dual.demo.svc.clusterset.local", "SRV"],
    )
    .await;
    assert_eq!(rdata(&srv.additional), ["A 10.96.0.30", "AAAA fd00:77::30"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_nodata_refused_and_case() {
    if !dig_available() {
        return;
    }
    let s = start(fixture()).await;
    let nodata = [
        ["web.demo.svc.clusterset.local", "AAAA"],
        ["svc.clusterset.local", "A"],
        ["demo.svc.clusterset.local", "A"],
    ];
    for args in nodata {
        let d = dig(s.addr, &args).await;
        assert_eq!(d.status, "NOERROR", "{args:?}");
        assert!(d.answer.is_empty(), "{args:?}");
        assert!(d.authority[0].contains(" SOA "), "{args:?}: {d:?}");
    }
    for args in [
        ["nope.demo.svc.clusterset.local", "A"],
        ["east.web.demo.svc.clusterset.local", "A"],
    ] {
        let d = dig(s.addr, &args).await;
        assert_eq!(d.status, "NXDOMAIN", "{args:?}");
        assert!(d.authority[0].contains(" SOA "), "{args:?}: {d:?}");
    }
    let d = dig(s.addr, &["example.com", "A"]).await;
    assert_eq!(d.status, "REFUSED");
    let d = dig(s.addr, &["WEB.Demo.SVC.ClusterSet.Local", "A"]).await;
    assert_eq!(rdata(&d.answer), ["A 10.96.0.10"]);
    let d = dig(s.addr, &["dual.demo.svc.clusterset.local", "ANY"]).await;
    assert_eq!(rdata(&d.answer), ["A 10.96.0.30"], "minimal ANY (RFC 8482)");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_truncation() {
    if !dig_available() {
        return;
    }
    let s = start(fixture()).await;
    let big = "big.demo.svc.clusterset.local";
    let d = dig(s.addr, &["+tcp", "web.demo.svc.clusterset.local", "A"]).await;
    assert_eq!(rdata(&d.answer), ["A 10.96.0.10"]);
    // +ignore: keep the truncated UDP answer instead of retrying over TCP.
    let d = dig(s.addr, &["+noedns", "+ignore", big, "A"]).await;
    assert!(d.flags.contains(&"tc".to_owned()), "{d:?}");
    assert!(d.answer.len() < 60);
    // By default dig retries a truncated answer over TCP and gets it all.
    let d = dig(s.addr, &["+noedns", big, "A"]).await;
    assert!(!d.flags.contains(&"tc".to_owned()), "{d:?}");
    assert_eq!(d.answer.len(), 60);
    let d = dig(s.addr, &["+tcp", big, "A"]).await;
    assert_eq!(d.answer.len(), 60);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_and_withdrawal() {
    if !dig_available() {
        return;
    }
    let s = start(fixture()).await;
    let web = ["web.demo.svc.clusterset.local", "A"];
    let moved = import("demo/web", &["10.96.0.99"], vec![]);
    s.catalog.send_replace(Arc::new(snapshot([moved])));
    let addr = s.addr;
    common::eventually("dig sees web's new address", move || async move {
        rdata(&dig(addr, &web).await.answer) == ["A 10.96.0.99"]
    })
    .await;
    let d = dig(s.addr, &["-x", "10.96.0.99"]).await;
    assert_eq!(rdata(&d.answer), ["PTR web.demo.svc.clusterset.local."]);
    s.catalog.send_replace(Arc::new(snapshot([])));
    common::eventually("dig sees web withdrawn", move || async move {
        dig(addr, &web).await.status == "NXDOMAIN"
    })
    .await;
    s.stop().await;
}
