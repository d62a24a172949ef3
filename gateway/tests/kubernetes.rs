//! Kubernetes mode: the gateway listens on the port `gateway_ports` gives each
//! imported service port (the port the federation records on the
//! ServiceImport and targets from the derived Service), not on ClusterSetIPs.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use causeway_catalog::{CatalogSnapshot, ExportTo, Import, PortKey, Protocol, gateway_ports};
use causeway_gateway::KubernetesPorts;
use support::*;
use tokio::net::TcpStream;

// Below Linux's ephemeral range (32768-60999), so no outbound connection can
// hold one of these ports; each test has its own range.
const BASE: u16 = 31300;
const HELD_BASE: u16 = 31400;
const COUNT: u16 = 64;

/// a (Kubernetes mode, ports from `base`) imports b's echo service. Returns
/// the mesh, the import to publish on a, and a's gateway port for it.
async fn pair(
    tweak: fn(&str, &mut causeway_gateway::Config),
    base: u16,
) -> (Mesh, Import, SocketAddr) {
    let mesh = Mesh::with_config(&[("a", "eu"), ("b", "eu")], "127.77.9.0/24", tweak);
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
        endpoint: None,
    };
    let port = gateway_ports(&snap, base, COUNT)[&key];
    assert!((base..base + COUNT).contains(&port));
    (mesh, imp, SocketAddr::from(([127, 0, 0, 1], port)))
}

fn ports_at(base: u16) -> Option<KubernetesPorts> {
    Some(KubernetesPorts {
        port_base: base,
        port_count: COUNT,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_is_served_on_its_gateway_port() {
    let (mut mesh, imp, addr) = pair(
        |name, cfg| {
            if name == "a" {
                cfg.kubernetes = ports_at(BASE);
            }
        },
        BASE,
    )
    .await;
    mesh.publish("a", vec![imp]);
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

/// What failed in CI when the range was inside the ephemeral ports: another
/// socket holds the gateway port. The listener comes up once it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_gateway_port_is_served_once_released() {
    let (mut mesh, imp, addr) = pair(
        |name, cfg| {
            if name == "a" {
                cfg.kubernetes = ports_at(HELD_BASE);
            }
        },
        HELD_BASE,
    )
    .await;
    let holder = hold(addr);
    mesh.publish("a", vec![imp]);
    wait_for(
        "a's bind to fail and be retried",
        Duration::from_secs(10),
        || async {
            (mesh
                .node("a")
                .metric("gateway_listener_bind_failures_total")
                >= 2.0)
                .then_some(())
        },
    )
    .await;
    assert!(
        ping(addr).await.is_none(),
        "the port is held, nothing listens"
    );
    drop(holder);
    wait_for(
        "the gateway port tunnels to b",
        Duration::from_secs(10),
        || ping(addr),
    )
    .await;
}

/// A connected client socket bound to `addr`'s port, as an outbound connection
/// given that ephemeral port would be.
fn hold(addr: SocketAddr) -> (std::net::TcpStream, std::net::TcpStream) {
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    // Closed with a reset, so no TIME_WAIT keeps the port from the next run.
    socket.set_linger(Some(Duration::ZERO)).unwrap();
    socket.bind(&addr.into()).unwrap();
    socket
        .connect(&server.local_addr().unwrap().into())
        .unwrap();
    let (accepted, _) = server.accept().unwrap();
    (socket.into(), accepted)
}
