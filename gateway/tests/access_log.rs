//! The access log through real gateways: one line per connection on each
//! side, read back from the files the gateways wrote.
#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use causeway_catalog::ExportTo;
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const LIMIT: Duration = Duration::from_secs(10);

/// Each cluster's log file; cluster names are unique across this file's tests.
fn log_path(cluster: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join("access_log_tests")
        .join(format!("{cluster}.log"))
}

fn fresh_logs(clusters: &[&str]) {
    for c in clusters {
        let p = log_path(c);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let _ = std::fs::remove_file(&p);
    }
}

fn log_all(cluster: &str, c: &mut causeway_gateway::Config) {
    c.access_log.path = Some(log_path(cluster));
}

fn log_refusals_only(cluster: &str, c: &mut causeway_gateway::Config) {
    log_all(cluster, c);
    c.access_log.sample = causeway_gateway::Ratio(0.0);
}

fn lines(cluster: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(log_path(cluster)).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The lines of `cluster` that `keep` selects, once there are `n` of them.
async fn wait_lines(cluster: &str, n: usize, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
    let what = format!("{n} access-log lines on {cluster}");
    wait_for(&what, LIMIT, || {
        let got: Vec<Value> = lines(cluster).into_iter().filter(|l| keep(l)).collect();
        async move { (got.len() >= n).then_some(got) }
    })
    .await
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

fn bytes(v: &Value) -> (u64, u64) {
    (
        v["request_bytes"].as_u64().unwrap(),
        v["response_bytes"].as_u64().unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tunnelled_connection_is_one_line_on_each_side() {
    fresh_logs(&["a", "b"]);
    let mut mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.79.1.0/24", log_all);
    let echo_addr = echo_server().await;
    mesh.set_exports(
        "b",
        vec![export("demo/echo", 7000, echo_addr, ExportTo::All)],
    );
    let b = mesh.info("b").clone();
    mesh.publish("a", vec![import("demo/echo", 7000, "127.79.1.1", &[&b])]);
    let vip: SocketAddr = "127.79.1.1:7000".parse().unwrap();
    wait_for("tunnel ready", LIMIT, || ping(vip)).await;
    // Distinct sizes of at least 1000 bytes tell these from the readiness pings.
    let sizes: Vec<u64> = (1..=5).map(|i| 1000 * i + 17).collect();
    for &n in &sizes {
        assert_eq!(echo_through(vip, vec![7; n as usize]).await.len() as u64, n);
    }
    let ours = |l: &Value| l["request_bytes"].as_u64().unwrap_or(0) >= 1000;
    let out = wait_lines("a", sizes.len(), ours).await;
    let inb = wait_lines("b", sizes.len(), ours).await;
    assert_eq!(
        (out.len(), inb.len()),
        (sizes.len(), sizes.len()),
        "exactly one line each"
    );
    for &n in &sizes {
        let o = out
            .iter()
            .find(|l| bytes(l) == (n, n))
            .unwrap_or_else(|| panic!("no outbound line of {n} bytes: {out:?}"));
        let i = inb
            .iter()
            .find(|l| bytes(l) == (n, n))
            .unwrap_or_else(|| panic!("no inbound line of {n} bytes: {inb:?}"));
        for (l, dir) in [(o, "outbound"), (i, "inbound")] {
            assert_eq!(text(l, "direction"), dir);
            assert_eq!(text(l, "source_cluster"), "a");
            assert_eq!(text(l, "source_id"), "spiffe://a.test/gateway");
            assert_eq!(text(l, "service"), "demo/echo");
            assert_eq!(
                (l["port"].as_u64(), text(l, "cluster")),
                (Some(7000), "b".into())
            );
            assert_eq!(
                (text(l, "result"), text(l, "status")),
                ("ok".into(), "ok".into())
            );
            assert_eq!(l["policy"], Value::Array(vec![]));
            assert!(
                text(l, "start").ends_with('Z') && text(l, "end") >= text(l, "start"),
                "{l}"
            );
        }
        assert!(text(o, "traceparent").starts_with("00-") && o["traceparent"] == i["traceparent"]);
        assert!(text(o, "client").starts_with("127.0.0.1:") && i["client"].is_null());
        assert_eq!(text(i, "endpoint"), echo_addr.to_string());
    }
    let traces: BTreeSet<String> = out.iter().map(|l| text(l, "traceparent")).collect();
    assert_eq!(traces.len(), sizes.len(), "one trace per connection");
    let written = mesh.node("b").metric("gateway_access_log_lines_total");
    assert!(written >= sizes.len() as f64, "lines counted: {written}");
}

/// Sends one byte and waits for EOF or a reset: a connection the gateway refuses.
async fn refused(addr: SocketAddr) {
    // A reset can come before connect() even returns.
    let mut s = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
        Err(e) => panic!("{e}"),
    };
    let _ = s.write_all(b"x").await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(buf.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_sample_zero_only_refusals_are_logged_on_both_sides() {
    fresh_logs(&["c", "d"]);
    let mut mesh = Mesh::with_config(
        &[("c", "eu"), ("d", "eu")],
        "127.79.2.0/24",
        log_refusals_only,
    );
    let echo_addr = echo_server().await;
    let only_e = ExportTo::Only([id("e")].into_iter().collect());
    mesh.set_exports(
        "d",
        vec![
            export("demo/echo", 7000, echo_addr, ExportTo::All),
            export("demo/secret", 7001, echo_addr, only_e),
        ],
    );
    let d = mesh.info("d").clone();
    mesh.publish(
        "c",
        vec![
            import("demo/echo", 7000, "127.79.2.1", &[&d]),
            import("demo/secret", 7001, "127.79.2.2", &[&d]),
        ],
    );
    let vip: SocketAddr = "127.79.2.1:7000".parse().unwrap();
    wait_for("tunnel ready", LIMIT, || ping(vip)).await;
    assert_eq!(echo_through(vip, vec![7; 5000]).await.len(), 5000);
    refused("127.79.2.2:7001".parse().unwrap()).await;
    let secret = |l: &Value| text(l, "service") == "demo/secret";
    let out = wait_lines("c", 1, secret).await;
    let inb = wait_lines("d", 1, secret).await;
    for l in [&out[0], &inb[0]] {
        assert_eq!(
            (text(l, "result"), text(l, "status")),
            ("forbidden".into(), "forbidden".into()),
            "{l}"
        );
    }
    assert_eq!(out[0]["traceparent"], inb[0]["traceparent"]);
    // At sample 0 no success is ever logged, only the refusal.
    for c in ["c", "d"] {
        let ok: Vec<Value> = lines(c)
            .into_iter()
            .filter(|l| text(l, "result") == "ok")
            .collect();
        assert!(ok.is_empty(), "{c} logged successes at sample 0: {ok:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_served_locally_names_its_endpoint() {
    fresh_logs(&["f"]);
    let mut mesh = Mesh::with_config(&[("f", "eu")], "127.79.3.0/24", log_all);
    let echo_addr = echo_server().await;
    mesh.set_exports(
        "f",
        vec![export("demo/echo", 7000, echo_addr, ExportTo::All)],
    );
    let f = mesh.info("f").clone();
    mesh.publish("f", vec![import("demo/echo", 7000, "127.79.3.1", &[&f])]);
    let vip: SocketAddr = "127.79.3.1:7000".parse().unwrap();
    wait_for("listener ready", LIMIT, || ping(vip)).await;
    assert_eq!(echo_through(vip, vec![7; 3000]).await.len(), 3000);
    let got = wait_lines("f", 1, |l| bytes(l) == (3000, 3000)).await;
    let l = &got[0];
    assert_eq!(
        (text(l, "direction"), text(l, "cluster")),
        ("outbound".into(), "f".into())
    );
    assert_eq!(text(l, "endpoint"), echo_addr.to_string());
    assert_eq!(text(l, "result"), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_decisions_are_logged_on_the_side_that_took_them() {
    fresh_logs(&["g", "h"]);
    let mut mesh = Mesh::with_config(&[("g", "eu"), ("h", "eu")], "127.79.4.0/24", log_all);
    let echo_addr = echo_server().await;
    mesh.set_exports(
        "h",
        vec![export("demo/echo", 7000, echo_addr, ExportTo::All)],
    );
    let h = mesh.info("h").clone();
    mesh.publish("g", vec![import("demo/echo", 7000, "127.79.4.1", &[&h])]);
    let vip: SocketAddr = "127.79.4.1:7000".parse().unwrap();
    wait_for("tunnel ready", LIMIT, || ping(vip)).await;
    mesh.node("g")
        .set_policies("- { service: demo/echo, split: { h: 1 } }");
    mesh.node("h").set_policies(
        "- { service: demo/echo, limits: { each_source: { bytes_per_second: 100000000 } } }",
    );
    assert_eq!(echo_through(vip, vec![7; 3001]).await.len(), 3001);
    let sized = |l: &Value| l["request_bytes"].as_u64() == Some(3001);
    let out = wait_lines("g", 1, sized).await;
    let inb = wait_lines("h", 1, sized).await;
    assert_eq!(out[0]["policy"], serde_json::json!(["split:h"]));
    assert_eq!(inb[0]["policy"], serde_json::json!(["limit:bandwidth"]));

    mesh.node("g")
        .set_policies("- { service: demo/echo, fault: { abort_percent: 100 } }");
    refused(vip).await;
    let aborted = |l: &Value| l["policy"] == serde_json::json!(["fault:abort"]);
    let out = wait_lines("g", 1, aborted).await;
    assert_eq!(text(&out[0], "status"), "fault_abort", "{}", out[0]);

    mesh.node("g").set_policies("[]");
    mesh.node("h").set_policies(
        "- { service: demo/echo, limits: { each_source: { connections_per_second: 0.001, burst: 1 } } }",
    );
    assert_eq!(
        echo_through(vip, vec![7; 2001]).await.len(),
        2001,
        "the burst admits one"
    );
    refused(vip).await;
    let limited = |l: &Value| l["policy"] == serde_json::json!(["limit:rate"]);
    let inb = wait_lines("h", 1, limited).await;
    assert_eq!(text(&inb[0], "status"), "limited");
    let out = wait_lines("g", 1, |l| text(l, "status") == "limited").await;
    assert_eq!(out[0]["traceparent"], inb[0]["traceparent"]);
}
