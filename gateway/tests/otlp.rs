//! Connection spans through real gateways, received by an OTLP gRPC collector
//! running in the test; and a hung collector that must not hold up traffic.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use causeway_catalog::ExportTo;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use support::*;
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(10);

/// A span as received, with its resource's attributes.
#[derive(Clone, Debug)]
struct Received {
    resource: Vec<KeyValue>,
    span: Span,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Received>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap();
        for rs in req.into_inner().resource_spans {
            let resource = rs.resource.map(|r| r.attributes).unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                let resource = resource.clone();
                got.push(Received { resource, span });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_collector() -> (SocketAddr, Collector) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let c = Collector::default();
    let server = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(c.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l));
    tokio::spawn(server);
    (addr, c)
}

fn attr(kvs: &[KeyValue], key: &str) -> Option<String> {
    let v = kvs
        .iter()
        .find(|k| k.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    Some(match v {
        any_value::Value::StringValue(s) => s.clone(),
        any_value::Value::IntValue(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

static LIVE: OnceLock<SocketAddr> = OnceLock::new();
static HUNG: OnceLock<SocketAddr> = OnceLock::new();

fn log_path() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("otlp_tests_a.log")
}

fn trace_to_live(cluster: &str, c: &mut causeway_gateway::Config) {
    c.tracing.otlp_endpoint = Some(format!("http://{}", LIVE.get().unwrap()));
    c.tracing.batch_delay = Duration::from_millis(20);
    if cluster == "a" {
        c.access_log.path = Some(log_path());
    }
}

fn trace_to_hung(_: &str, c: &mut causeway_gateway::Config) {
    c.tracing.otlp_endpoint = Some(format!("http://{}", HUNG.get().unwrap()));
    c.tracing.batch_delay = Duration::from_millis(10);
    c.tracing.export_timeout = Duration::from_secs(30);
    c.tracing.queue = 2;
    c.tracing.max_batch = 2;
}

/// Clusters `x` -> `y`, `demo/echo` exported by `y`, imported by `x` at `vip`:7000.
async fn pair(
    names: [&str; 2],
    range: &str,
    vip: &str,
    tweak: fn(&str, &mut causeway_gateway::Config),
) -> (Mesh, SocketAddr) {
    let mut mesh = Mesh::with_config(&[(names[0], "eu"), (names[1], "eu")], range, tweak);
    let echo_addr = echo_server().await;
    mesh.set_exports(
        names[1],
        vec![export("demo/echo", 7000, echo_addr, ExportTo::All)],
    );
    let y = mesh.info(names[1]).clone();
    mesh.publish(names[0], vec![import("demo/echo", 7000, vip, &[&y])]);
    let addr: SocketAddr = format!("{vip}:7000").parse().unwrap();
    wait_for("tunnel ready", LIMIT, || ping(addr)).await;
    (mesh, addr)
}

/// The spans of the connection that carried `n` bytes each way: (client, server).
async fn spans_of(c: &Collector, n: usize) -> (Received, Received) {
    wait_for("both spans of the connection", LIMIT, || {
        let got = c.0.lock().unwrap().clone();
        let ours = |kind: SpanKind| {
            got.iter()
                .find(|r| {
                    r.span.kind == kind as i32
                        && attr(&r.span.attributes, "causeway.request_bytes") == Some(n.to_string())
                })
                .cloned()
        };
        let pair = ours(SpanKind::Client).zip(ours(SpanKind::Server));
        async move { pair }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_gateways_export_one_trace_per_connection() {
    let _ = std::fs::remove_file(log_path());
    let (addr, collector) = start_collector().await;
    LIVE.set(addr).unwrap();
    let (mesh, vip) = pair(["a", "b"], "127.79.11.0/24", "127.79.11.1", trace_to_live).await;
    assert_eq!(echo_through(vip, vec![7; 1234]).await.len(), 1234);
    let (client, server) = spans_of(&collector, 1234).await;
    let (c, s) = (&client.span, &server.span);
    assert_eq!(hex(&c.trace_id), hex(&s.trace_id), "one trace");
    assert_eq!(
        hex(&s.parent_span_id),
        hex(&c.span_id),
        "inbound span is the outbound's child"
    );
    assert!(c.parent_span_id.is_empty(), "the outbound span is the root");
    // The outbound span's ids are the traceparent the access log shows.
    let log = std::fs::read_to_string(log_path()).unwrap();
    let tp = format!("00-{}-{}-01", hex(&c.trace_id), hex(&c.span_id));
    assert!(
        log.lines()
            .any(|l| l.contains(&tp) && l.contains("\"request_bytes\":1234")),
        "{tp} not in\n{log}"
    );
    for (r, cluster, peer) in [(&client, "a", "b"), (&server, "b", "a")] {
        let a = &r.span.attributes;
        assert_eq!(
            attr(&r.resource, "service.name").as_deref(),
            Some("causeway-gateway")
        );
        assert_eq!(
            attr(&r.resource, "causeway.cluster").as_deref(),
            Some(cluster)
        );
        assert_eq!(attr(a, "causeway.service").as_deref(), Some("demo/echo"));
        assert_eq!(attr(a, "causeway.port").as_deref(), Some("7000"));
        assert_eq!(attr(a, "causeway.peer_cluster").as_deref(), Some(peer));
        assert_eq!(attr(a, "causeway.response_bytes").as_deref(), Some("1234"));
        assert_eq!(attr(a, "causeway.result").as_deref(), Some("ok"));
        assert!(r.span.end_time_unix_nano >= r.span.start_time_unix_nano);
    }
    for node in ["a", "b"] {
        let exported = "gateway_spans_exported_total";
        wait_for("spans counted", LIMIT, || async {
            (mesh.node(node).metric(exported) >= 1.0).then_some(())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_collector_neither_breaks_nor_slows_connections() {
    HUNG.set(silent_server().await).unwrap();
    let (mesh, vip) = pair(["c", "d"], "127.79.12.0/24", "127.79.12.1", trace_to_hung).await;
    // Each export now waits 30 s for an answer: were traffic to wait on it,
    // these connections would take that long.
    let t0 = Instant::now();
    for i in 0..20 {
        assert_eq!(echo_through(vip, vec![7; 1000 + i]).await.len(), 1000 + i);
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(8),
        "20 connections took {took:?}"
    );
    // The queue (2 spans) filled behind the stuck export: the rest were dropped and counted.
    let dropped = "gateway_spans_dropped_total{reason=\"queue_full\"}";
    for node in ["c", "d"] {
        wait_for("spans dropped", LIMIT, || async {
            (mesh.node(node).metric(dropped) >= 10.0).then_some(())
        })
        .await;
        assert_eq!(mesh.node(node).metric("gateway_spans_exported_total"), 0.0);
    }
}
