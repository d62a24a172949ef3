//! Kubernetes mode: the gateway listens on the port `gateway_ports` gives each
//! imported service port (the port the federation records on the
//! ServiceImport and targets from the derived Service), not on ClusterSetIPs.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, ExportTo, PortKey, Protocol, gateway_ports};
use causeway_gateway::KubernetesPorts;
use support::*;
use tokio::net::TcpStream;

const BASE: u16 = 47300;
const COUNT: u16 = 64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_served_on_its_gateway_port() {
    let mut mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.77.9.0/24", |name, cfg| {
        if name == "a" {
            cfg.kubernetes = Some(KubernetesPorts {
                port_base: BASE,
                port_count: COUNT,
            });
        }
    });
    let echo = echo_server().await;
    mesh.set_exports("b", vec![export("demo/echo", 7000, echo, ExportTo::All)]);
    let b = mesh.info("b").clone();
    let imp = import("demo/echo", 7000, "127.77.9.1", &[&b]);
    let mut snap = CatalogSnapshot::default();
    snap.imports.insert(imp.key.clone(), imp.clone());
    let key = PortKey {
        service: imp.key.clone(),
        port: 7000,
        protocol: Protocol::Tcp,
    };
    let port = gateway_ports(&snap, BASE, COUNT)[&key];
    assert!((BASE..BASE + COUNT).contains(&port));
    mesh.publish("a", vec![imp]);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for(
        "the gateway port tunnels to b",
        Duration::from_secs(10),
        || ping(addr),
    )
    .await;
    let vip = SocketAddr::from(([127, 77, 9, 1], 7000));
    assert!(
        TcpStream::connect(vip).await.is_err(),
        "no listener on the ClusterSetIP in Kubernetes mode"
    );
    // Withdrawn: the port closes.
    mesh.publish("a", vec![]);
    wait_for(
        "the gateway port closes",
        Duration::from_secs(10),
        || async move { TcpStream::connect(addr).await.is_err().then_some(()) },
    )
    .await;
}
