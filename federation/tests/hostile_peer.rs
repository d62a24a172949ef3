//! A hostile peer over real gRPC and mutual TLS (docs/security.md, findings
//! 3, 4 and 5): it floods exports, imports into kube-system, back-dates a
//! conflicting export, claims this cluster's region, and advertises another
//! cluster's gateway address. Each attempt fails; what it may import, it does;
//! the honest peer is untouched.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use causeway_catalog::{Condition, Port};
use causeway_federation::proto::{self, federation_server::FederationServer, update::Kind};
use causeway_federation::{Federation, PeerEndpoint};
use causeway_identity::{PeerSet, ReloadingCert, Workload};
use common::*;
use futures::StreamExt;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::{Request, Response, Status};

const LIMIT: Duration = Duration::from_secs(15);

fn port(name: &str, number: u32) -> proto::Port {
    proto::Port {
        name: name.into(),
        number,
        protocol: proto::Protocol::Tcp.into(),
        ..Default::default()
    }
}

fn export(ns: &str, name: &str, number: u32, created_at_ms: u64) -> proto::Export {
    proto::Export {
        namespace: ns.into(),
        name: name.into(),
        ports: vec![port("http", number)],
        endpoints: vec![proto::Endpoint {
            addr: "10.9.9.9:80".into(),
            ready: true,
            ..Default::default()
        }],
        created_at_ms,
        ..Default::default()
    }
}

/// What x sends: one snapshot, then silence (the session stays open).
fn hostile_snapshot(victim_region: &str, gateways: Vec<String>) -> proto::Update {
    let mut exports: Vec<proto::Export> = (0..1500)
        .map(|i| export("flood", &format!("s{i:04}"), 80, 0))
        .collect();
    exports.push(export("kube-system", "kube-dns", 53, 0));
    // b's demo/web uses http=80; x's says http=81 and that it is from 1970.
    exports.push(export("demo", "web", 81, 0));
    let mut wide = export("wide", "ports", 1, 0);
    wide.ports = (1..=100).map(|i| port(&format!("p{i}"), i)).collect();
    exports.push(wide);
    let cluster = proto::ClusterInfo {
        name: "x".into(),
        region: victim_region.into(),
        zone: "za".into(),
        trust_domain: "x.test.causeway".into(),
        gateways,
    };
    proto::Update {
        kind: Some(Kind::Snapshot(proto::Snapshot {
            epoch: 1,
            version: 1,
            cluster: Some(cluster),
            exports,
        })),
    }
}

struct Hostile(proto::Update);

type Updates = std::pin::Pin<Box<dyn futures::Stream<Item = Result<proto::Update, Status>> + Send>>;

#[tonic::async_trait]
impl proto::federation_server::Federation for Hostile {
    type SubscribeStream = Updates;

    async fn subscribe(
        &self,
        _: Request<proto::SubscribeRequest>,
    ) -> Result<Response<Updates>, Status> {
        let first = futures::stream::iter([Ok(self.0.clone())]);
        Ok(Response::new(Box::pin(
            first.chain(futures::stream::pending()),
        )))
    }
}

async fn serve_hostile(
    cert: Arc<ReloadingCert>,
    client: causeway_identity::PeerTrust,
    update: proto::Update,
    stop: &CancellationToken,
) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let peers = Arc::new(PeerSet::new(vec![client]).unwrap());
    let tls = causeway_identity::server_config(cert, peers.clone(), Workload::Federation).unwrap();
    let t = TaskTracker::new();
    let incoming = causeway_federation::incoming(listener, tls, peers, LIMIT, t, stop.clone());
    let svc = FederationServer::new(Hostile(update)).max_encoding_message_size(64 << 20);
    let stop = stop.clone();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, stop.cancelled_owned())
            .await
            .unwrap();
    });
    addr
}

fn gauge(metrics: &str, reason: &str) -> Option<u64> {
    let prefix = format!("federation_peer_refused{{peer=\"x\",reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_peer_gets_only_what_its_policy_allows() {
    init_tracing();
    let mut mesh = Mesh::start(&["a", "b"], &["", &export_yaml(&[("demo/web", "all")])]).await;
    wait_until("a imports b's demo/web", LIMIT, || {
        has(&mesh.node("a").catalog(), "demo/web")
    })
    .await;
    // x comes later: a first saw b's demo/web before x's.
    let x = Identity::new("x");
    let (a_info, b_info) = (mesh.nodes[0].id.info(), mesh.nodes[1].id.info());
    let mut stolen: Vec<String> = [&a_info, &b_info]
        .iter()
        .map(|i| i.gateways[0].to_string())
        .collect();
    stolen.push("127.0.0.1:4999".into());
    let stop = CancellationToken::new();
    let update = hostile_snapshot(&a_info.region, stolen);
    let a_trust = mesh.nodes[0].id.trust();
    let x_addr = serve_hostile(x.cert(), a_trust, update, &stop).await;
    let mut peers = mesh.peers_of(0);
    peers.push(PeerEndpoint {
        trust: x.trust(),
        addr: x_addr.to_string(),
        policy: Default::default(),
    });
    mesh.nodes[0].kill().await;
    let a = &mut mesh.nodes[0];
    let inputs = inputs_for(a, peers);
    a.stop = inputs.shutdown.clone();
    a.registry = Registry::default();
    a.fed = Some(Federation::start(inputs, &mut a.registry).await.unwrap());
    let a = mesh.node("a");
    wait_until("a imports what x may import", LIMIT, || {
        has(&a.catalog(), "flood/s0000")
    })
    .await;
    let cat = a.catalog();
    // Finding 3: quotas. 1000 exports at most; the 100-port service is left out.
    let from_x = |ns: &str| {
        let of_x =
            |i: &&causeway_catalog::Import| i.clusters.iter().any(|c| c.cluster.as_str() == "x");
        cat.imports
            .values()
            .filter(of_x)
            .filter(|i| i.key.namespace() == ns)
            .count()
    };
    assert_eq!(from_x("flood") + from_x("demo"), 1000);
    assert_eq!(from_x("wide"), 0);
    // Finding 5: no kube-system; region from local config; created_at clamped.
    assert_eq!(from_x("kube-system"), 0);
    let web = &cat.imports[&"demo/web".parse().unwrap()];
    assert_eq!(
        web.ports,
        vec![Port::tcp("http", 80)],
        "b's older export wins"
    );
    assert!(
        web.conditions.iter().any(|c| matches!(c,
            Condition::Conflict { winner, disagreeing, .. }
                if winner.as_str() == "b" && disagreeing.iter().any(|d| d.as_str() == "x"))),
        "{:?}",
        web.conditions
    );
    let x_serving = web
        .clusters
        .iter()
        .find(|c| c.cluster.as_str() == "x")
        .unwrap();
    assert_eq!(x_serving.region, "", "x's claim of a's region is ignored");
    // Finding 4: a's and b's gateway addresses stay theirs.
    let clusters = &cat.clusters;
    let x_id = causeway_catalog::ClusterId::new("x").unwrap();
    let x_gws: Vec<String> = clusters[&x_id]
        .gateways
        .iter()
        .map(|g| g.to_string())
        .collect();
    assert_eq!(x_gws, ["127.0.0.1:4999"]);
    assert_eq!(clusters[&b_info.name].gateways, b_info.gateways);
    // Each refusal is a metric.
    let metrics = a.metrics();
    assert_eq!(gauge(&metrics, "exports"), Some(501), "{metrics}");
    assert_eq!(gauge(&metrics, "namespace"), Some(1));
    assert_eq!(gauge(&metrics, "ports_per_export"), Some(1));
    assert_eq!(gauge(&metrics, "gateway_owned"), Some(2));
    stop.cancel();
    mesh.shutdown().await;
}
