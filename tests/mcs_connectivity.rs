//! The upstream MCS conformance suite's connectivity cases (`connectivity.go`),
//! in Kubernetes mode against the strict fake API servers, with real
//! gateways and causeway's DNS. A "pod" is a TCP server on its own loopback
//! address answering `pod ip <its address>`, as upstream's socat pods do; a
//! request goes where kube-proxy would send it: the name resolves to a
//! ClusterIP, and the Service with that ClusterIP sends the port to its
//! target port on a gateway pod (127.0.0.1 here).

#![allow(clippy::unwrap_used)]

mod mcs;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::rr::RecordType;
use mcs::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// After the link, as exports in a live clusterset are: a peer's created_at
// counts from when this cluster first saw the export (docs/security.md), so
// exports dated before it would all look as old as the link.
const T0: &str = "2099-01-01T00:00:00Z";
const T1: &str = "2099-01-01T00:00:02Z";
const FQDN: &str = "hello.mcs-conformance.svc.clusterset.local.";

/// The hello pod of cluster `i` in test `slot`: 127.0.<80+slot>.<10+i>, on port 42.
async fn pod(slot: u8, i: usize) -> IpAddr {
    let ip: IpAddr = format!("127.0.{}.{}", 80 + slot, 10 + i).parse().unwrap();
    let l = TcpListener::bind((ip, 42)).await.unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(format!("pod ip {ip}\n").as_bytes()).await;
        }
    });
    ip
}

/// Deploys hello in cluster `i` (ports from `svc`) with its pod's EndpointSlice.
async fn deploy(c: &Cluster, slot: u8, i: usize, svc: Value) -> IpAddr {
    let ip = pod(slot, i).await;
    c.kube.put("services", svc);
    c.kube.put("endpointslices", json!({"metadata": {"name": "hello-x", "namespace": NS, "labels": {"kubernetes.io/service-name": HELLO}},
        "addressType": "IPv4", "ports": [{"name": "tcp", "port": 42, "protocol": "TCP"}, {"name": "tcp2", "port": 42, "protocol": "TCP"}],
        "endpoints": [{"addresses": [ip.to_string()], "conditions": {"ready": true}}]}));
    ip
}

/// Where kube-proxy sends `name`:`port` in cluster `c`, if the name resolves.
async fn kube_proxy(c: &Cluster, r: &R, port: u16) -> Option<SocketAddr> {
    let l = r.lookup(FQDN, RecordType::A).await.ok()?;
    let ip = l.answers().first()?.data.to_string();
    let names = c.kube.names("services");
    let svc = names.iter().find_map(|n| {
        let (ns, name) = n.split_once('/')?;
        let s = c.kube.get("services", ns, name)?;
        (s["spec"]["clusterIP"] == ip.as_str()).then_some(s)
    })?;
    let ports = svc["spec"]["ports"].as_array()?;
    let p = ports
        .iter()
        .find(|p| p["port"] == port && p["protocol"] == "TCP")?;
    let target = u16::try_from(p["targetPort"].as_u64()?).ok()?;
    Some(SocketAddr::new(c.gateway_ip, target))
}

/// upstream's `echo hi | nc <svc> <port>`: what the service answers, if anything.
async fn nc(c: &Cluster, port: u16) -> Option<String> {
    let r = resolver(c.dns);
    let addr = kube_proxy(c, &r, port).await?;
    let io = async {
        let mut s = TcpStream::connect(addr).await?;
        let mut out = String::new();
        s.read_to_string(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    tokio::time::timeout(Duration::from_secs(3), io)
        .await
        .ok()?
        .ok()
}

/// upstream's `awaitCmdOutputMatches` with `MustPassRepeatedly(n)`.
async fn await_answer(c: &Cluster, port: u16, want: &str, n: usize) {
    let deadline = std::time::Instant::now() + LIMIT;
    let mut passed = 0;
    while passed < n {
        let got = nc(c, port).await;
        if got.as_deref().is_some_and(|g| g.contains(want)) {
            passed += 1;
            continue;
        }
        passed = 0;
        assert!(
            std::time::Instant::now() < deadline,
            "{}:{port} answered {got:?}, not {want:?}",
            c.name
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn svc_with_ports(ports: Value) -> Value {
    let mut s = hello_service();
    s["spec"]["ports"] = ports;
    s
}

/// [Required] "Connectivity to a service that is not exported should be inaccessible"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_connectivity_to_a_service_that_is_not_exported_is_inaccessible() {
    let cs = clusters_with(Some(1)).await;
    deploy(&cs[0], 1, 0, hello_service()).await;
    // Exports are handled: an exported service in the same cluster shows up meanwhile.
    cs[0].kube.put(
        "services",
        json!({"metadata": {"name": "other", "namespace": NS}, "spec": {"ports": [{"port": 80}]}}),
    );
    cs[0].kube.put(
        "serviceexports",
        json!({"metadata": {"name": "other", "namespace": NS}}),
    );
    for c in &cs {
        wait_until(
            &format!("{} imports the exported neighbour", c.name),
            LIMIT,
            || c.kube.get("serviceimports", NS, "other").is_some(),
        )
        .await;
    }
    for c in &cs {
        for _ in 0..20 {
            assert!(!nc(c, 42).await.unwrap_or_default().contains("pod ip"));
        }
        assert!(service_import(c).is_none());
    }
    shutdown(cs).await;
}

/// [Optional, Connectivity, ClusterIP] "Connectivity to an exported ClusterIP service should be accessible through DNS"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_connectivity_to_an_exported_cluster_ip_service_through_dns() {
    let cs = clusters_with(Some(2)).await;
    deploy(&cs[0], 2, 0, hello_service()).await;
    export(&cs[0], T0);
    for c in &cs {
        await_answer(c, 42, "pod ip", 1).await;
    }
    shutdown(cs).await;
}

/// [Optional, Connectivity, ClusterIP] "Connectivity to a ClusterIP service existing in two clusters but exported from one should only access the exporting cluster"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_connectivity_reaches_only_the_exporting_cluster() {
    let cs = clusters_with(Some(3)).await;
    let west_pod = deploy(&cs[0], 3, 0, hello_service()).await;
    deploy(&cs[1], 3, 1, hello_service()).await;
    export(&cs[0], T0);
    for c in &cs {
        await_answer(c, 42, &west_pod.to_string(), 10).await;
    }
    shutdown(cs).await;
}

/// upstream's two-cluster driver for the port cases: west exports hello, then east `svc2`.
async fn two_clusters(cs: &[Cluster; 2], slot: u8, svc2: Value) -> (IpAddr, IpAddr) {
    let west_pod = deploy(&cs[0], slot, 0, hello_service()).await;
    export(&cs[0], T0);
    await_import(&cs[0], "the first cluster's ServiceImport", |_| true).await;
    let east_pod = deploy(&cs[1], slot, 1, svc2).await;
    export(&cs[1], T1);
    for c in cs {
        await_condition(c, "Conflict", "True").await;
    }
    (west_pod, east_pod)
}

/// [Optional, Connectivity, ClusterIP, StrictPortConflict] "Connectivity to exported services with same port name but different port numbers on each cluster should only route traffic to the cluster that exposes the port"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_connectivity_same_port_name_different_numbers_routes_only_to_the_cluster_with_the_port()
 {
    let cs = clusters_with(Some(4)).await;
    let svc2 =
        svc_with_ports(json!([{"name": "tcp", "port": 4242, "protocol": "TCP", "targetPort": 42}]));
    let (west_pod, _) = two_clusters(&cs, 4, svc2).await;
    for c in &cs {
        await_answer(c, 42, &west_pod.to_string(), 10).await;
    }
    shutdown(cs).await;
}

/// [Optional, Connectivity, ClusterIP, StrictPortConflict] "Connectivity to exported services with different port name on each cluster should route traffic to each port only to the cluster that exposes it"
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_connectivity_different_port_names_route_each_port_to_its_cluster() {
    let cs = clusters_with(Some(5)).await;
    let svc2 = svc_with_ports(
        json!([{"name": "tcp2", "port": 4242, "protocol": "TCP", "targetPort": 42}]),
    );
    let (west_pod, east_pod) = two_clusters(&cs, 5, svc2).await;
    for c in &cs {
        await_answer(c, 42, &west_pod.to_string(), 10).await;
        await_answer(c, 4242, &east_pod.to_string(), 10).await;
    }
    shutdown(cs).await;
}
