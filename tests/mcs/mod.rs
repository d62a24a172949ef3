//! The harness of the MCS conformance mirror: two clusters, each a strict
//! in-memory API server (federation/tests/fake_kube) with a federation
//! reading and writing it through the real `kube::Client`, linked over
//! mutual TLS on loopback, and a causeway DNS server on the importing
//! cluster's catalog queried with hickory's resolver. Cluster 0 (`west`)
//! is the upstream suite's `clients[0]`, where the hello service runs.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use causeway_federation::{
    Federation, FederationInputs, KubeSinkConfig, KubeSourceConfig, PeerEndpoint, SourceConfig,
};
use hickory_resolver::Resolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

#[path = "../../federation/tests/common/mod.rs"]
pub mod common;
#[path = "../../federation/tests/fake_kube/mod.rs"]
pub mod fake_kube;

pub use common::wait_until;
use common::{Identity, free_addr, test_config};
use fake_kube::FakeKube;

/// Upstream waits up to 20 s for each condition.
pub const LIMIT: Duration = Duration::from_secs(20);
pub const NS: &str = "mcs-conformance";
pub const HELLO: &str = "hello";

pub struct Cluster {
    pub name: &'static str,
    /// Where its gateway listens (Kubernetes-mode gateway ports), when it has one.
    pub gateway_ip: std::net::IpAddr,
    pub kube: FakeKube,
    pub fed: Federation,
    pub stop: CancellationToken,
    pub dns: SocketAddr,
}

/// Gateway ports per cluster: below the ephemeral range, apart from other tests'.
pub const PORT_BASE: [u16; 2] = [29000, 29500];
pub const PORT_COUNT: u16 = 400;

fn sink(url: String, me: &str, base: u16) -> KubeSinkConfig {
    KubeSinkConfig {
        api_url: Some(url),
        namespace: "causeway".into(),
        gateway_selector: BTreeMap::from([("app".into(), "causeway-gateway".into())]),
        port_base: base,
        port_count: PORT_COUNT,
        lease_name: "causeway-federation".into(),
        identity: Some(me.into()),
        lease_duration: Duration::from_secs(1),
        label_leader_pod: false,
        renew_interval: Duration::from_millis(100),
        resync_interval: Duration::from_secs(30),
        links_secret: "causeway-links".into(),
    }
}

/// Two linked clusters, `west` and `east`, each with its namespace and gateway pod.
pub async fn clusters() -> [Cluster; 2] {
    clusters_with(None).await
}

/// As [`clusters`]; with `Some(slot)`, each also runs a gateway in Kubernetes
/// mode on 127.0.<70+slot>.<1+i> (gateway ports from [`PORT_BASE`]): tests
/// of one binary run at once, so each takes its own slot.
pub async fn clusters_with(slot: Option<u8>) -> [Cluster; 2] {
    common::init_tracing();
    let ids = [Identity::new("west"), Identity::new("east")];
    let addrs = [free_addr(), free_addr()];
    let gw_ips: [std::net::IpAddr; 2] =
        [1, 2].map(|h| std::net::Ipv4Addr::new(127, 0, 70 + slot.unwrap_or(0), h).into());
    let gw_addrs = gw_ips.map(free_udp);
    let mut out = Vec::new();
    for i in 0..2 {
        let kube = FakeKube::start().await;
        kube.put("pods", json!({"metadata": {"name": "gw-0", "namespace": "causeway", "labels": {"app": "causeway-gateway"}},
            "status": {"podIP": format!("10.244.{i}.10"), "conditions": [{"type": "Ready", "status": "True"}]}}));
        let me = ids[i].name.to_string();
        let mut cfg = test_config(addrs[i], None);
        cfg.kubernetes = Some(sink(
            kube.url(&format!("{me}-0")),
            &format!("{me}-0"),
            PORT_BASE[i],
        ));
        let source = KubeSourceConfig {
            api_url: Some(kube.url(&format!("{me}-source"))),
            sync_timeout: Duration::from_secs(5),
        };
        let peer = PeerEndpoint {
            trust: ids[1 - i].trust(),
            addr: addrs[1 - i].to_string(),
            policy: Default::default(),
        };
        let stop = CancellationToken::new();
        let mut local = ids[i].info();
        local.gateways = vec![gw_addrs[i]];
        let inputs = FederationInputs {
            cfg,
            source: SourceConfig::Kubernetes(source),
            local: local.clone(),
            cert: ids[i].cert(),
            peers: vec![peer],
            own: Some(ids[i].trust()),
            vip_ranges: vec![format!("10.96.{}.0/24", 200 + i).parse().unwrap()],
            shutdown: stop.clone(),
        };
        let fed = Federation::start(inputs, &mut Registry::default())
            .await
            .unwrap();
        let dns = dns_server(&fed, &stop).await;
        if slot.is_some() {
            gateway(&ids, i, gw_addrs[i], local, &fed, &stop).await;
        }
        let name = if i == 0 { "west" } else { "east" };
        out.push(Cluster {
            name,
            gateway_ip: gw_ips[i],
            kube,
            fed,
            stop,
            dns,
        });
    }
    let east = out.pop().unwrap();
    [out.pop().unwrap(), east]
}

fn free_udp(ip: std::net::IpAddr) -> SocketAddr {
    let s = std::net::UdpSocket::bind((ip, 0)).unwrap();
    s.local_addr().unwrap()
}

async fn gateway(
    ids: &[Identity; 2],
    i: usize,
    listen: SocketAddr,
    local: causeway_catalog::ClusterInfo,
    fed: &Federation,
    stop: &CancellationToken,
) {
    use causeway_identity::{CertPaths, PeerSet, ReloadingCert, Validity, Workload};
    let dir = ids[i].dir.path();
    let leaf = ids[i]
        .ca
        .issue(Workload::Gateway, Validity::default())
        .unwrap();
    leaf.save(dir, Workload::Gateway, true).unwrap();
    let cert = ReloadingCert::load(CertPaths {
        cert: dir.join("gateway.pem"),
        key: dir.join("gateway-key.pem"),
    })
    .unwrap();
    let mut cfg = causeway_gateway::Config {
        listen,
        ..causeway_gateway::Config::default()
    };
    cfg.kubernetes = Some(causeway_gateway::KubernetesPorts {
        port_base: PORT_BASE[i],
        port_count: PORT_COUNT,
    });
    cfg.connections.backoff_initial = Duration::from_millis(20);
    cfg.connections.backoff_max = Duration::from_millis(200);
    let inputs = causeway_gateway::GatewayInputs {
        cfg,
        local,
        cert,
        peers: std::sync::Arc::new(PeerSet::new(vec![ids[1 - i].trust()]).unwrap()),
        catalog: fed.catalog(),
        local_exports: fed.local_exports(),
        policies: tokio::sync::watch::channel(Default::default()).1,
        shutdown: stop.clone(),
    };
    let gw = causeway_gateway::Gateway::bind(inputs, &mut Registry::default())
        .await
        .unwrap();
    tokio::spawn(gw.run());
}

async fn dns_server(fed: &Federation, stop: &CancellationToken) -> SocketAddr {
    let cfg = causeway_dns::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        udp_workers: Some(1),
        ..causeway_dns::Config::default()
    };
    let server = causeway_dns::DnsServer::bind(&cfg, fed.catalog(), &mut Registry::default())
        .await
        .unwrap();
    let addr = server.local_addr().unwrap();
    let stop = stop.clone();
    tokio::spawn(async move { server.run(stop).await });
    addr
}

pub async fn shutdown(cs: [Cluster; 2]) {
    for c in cs {
        c.stop.cancel();
        c.fed.closed().await;
    }
}

/// Upstream's `newHelloService`: tcp/42 and udp/42, ClientIP affinity for 10 s.
pub fn hello_service() -> Value {
    json!({"metadata": {"name": HELLO, "namespace": NS, "labels": {"dummy-svc": "dummy"}, "annotations": {"dummy-svc": "dummy"}},
        "spec": {"selector": {"app": HELLO},
            "ports": [{"name": "tcp", "port": 42, "protocol": "TCP"}, {"name": "udp", "port": 42, "protocol": "UDP"}],
            "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10}},
            "ipFamilyPolicy": "PreferDualStack"}})
}

/// The hello pods' EndpointSlice (what the EndpointSlice controller writes),
/// `hosts` of them, with hostnames for a StatefulSet.
pub fn hello_slice(cluster: usize, hosts: usize, stateful: bool) -> Value {
    let eps: Vec<Value> = (0..hosts)
        .map(|h| {
            let mut e = json!({"addresses": [format!("10.{}.0.{}", 10 + cluster, 5 + h)], "conditions": {"ready": true}});
            if stateful {
                e["hostname"] = json!(format!("hello-ss-{h}"));
            }
            e
        })
        .collect();
    json!({"metadata": {"name": "hello-abcde", "namespace": NS,
        "labels": {"kubernetes.io/service-name": HELLO, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
        "addressType": "IPv4",
        "ports": [{"name": "tcp", "port": 42, "protocol": "TCP"}, {"name": "udp", "port": 42, "protocol": "UDP"}],
        "endpoints": eps})
}

/// Deploys `svc` (and its pods' slice) in cluster `i`, then exports it.
pub fn deploy_and_export(c: &Cluster, i: usize, svc: Value, created: &str) {
    c.kube.put("services", svc);
    c.kube.put("endpointslices", hello_slice(i, 1, false));
    export(c, created);
}

pub fn export(c: &Cluster, created: &str) {
    c.kube.put(
        "serviceexports",
        json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
            "metadata": {"name": HELLO, "namespace": NS, "creationTimestamp": created,
                "labels": {"dummy-svcexport": "dummy"}, "annotations": {"dummy-svcexport": "dummy"}}}),
    );
}

pub fn unexport(c: &Cluster) {
    c.kube.delete("serviceexports", NS, HELLO);
}

pub fn service_import(c: &Cluster) -> Option<Value> {
    c.kube.get("serviceimports", NS, HELLO)
}

pub fn export_condition(c: &Cluster, ty: &str) -> Option<(String, String)> {
    let se = c.kube.get("serviceexports", NS, HELLO)?;
    let conds = se["status"]["conditions"].as_array()?.clone();
    let cond = conds.iter().find(|x| x["type"] == ty)?;
    Some((
        cond["status"].as_str()?.to_owned(),
        cond["reason"].as_str()?.to_owned(),
    ))
}

pub async fn await_condition(c: &Cluster, ty: &str, status: &str) -> String {
    let mut reason = String::new();
    wait_until(
        &format!("{ty}={status} on {}'s ServiceExport", c.name),
        LIMIT,
        || match export_condition(c, ty) {
            Some((s, r)) if s == status => {
                reason = r;
                true
            }
            _ => false,
        },
    )
    .await;
    reason
}

pub async fn await_import(c: &Cluster, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    wait_until(&format!("{what} on {}", c.name), LIMIT, || {
        service_import(c).is_some_and(|si| check(&si))
    })
    .await;
    service_import(c).unwrap()
}

pub async fn await_no_import(c: &Cluster) {
    wait_until(&format!("no ServiceImport on {}", c.name), LIMIT, || {
        service_import(c).is_none()
    })
    .await;
}

/// The ServiceImport's ports as upstream's `sortMCSPorts` compares them.
pub fn sorted_ports(si: &Value) -> Vec<Value> {
    let mut p: Vec<Value> = si["spec"]["ports"].as_array().cloned().unwrap_or_default();
    p.sort_by_key(|x| x["name"].as_str().unwrap_or("").to_lowercase());
    p
}

pub type R = Resolver<TokioRuntimeProvider>;

pub fn resolver(addr: SocketAddr) -> R {
    let mut conn = ConnectionConfig::udp();
    conn.port = addr.port();
    let ns = NameServerConfig::new(addr.ip(), true, vec![conn]);
    let cfg = ResolverConfig::from_parts(None, vec![], vec![ns]);
    let mut b = Resolver::builder_with_config(cfg, TokioRuntimeProvider::default());
    b.options_mut().cache_size = 0;
    b.options_mut().attempts = 3;
    b.build().unwrap()
}
